"""Training data out of a measured eval run: SFT rows of the responses that pass quality
thresholds, and DPO preference pairs of responses ranked by their scores, in the formats
TRL's trainers read. Every row keeps the ids of the records it came from.

Row shapes (TRL's conversational dataset formats, https://huggingface.co/docs/trl/dataset_formats):

- SFT, conversational language modeling::

    {"messages": [system, user, assistant], "metadata": {...}}

- DPO, conversational preference with an explicit prompt::

    {"prompt": [system, user], "chosen": [assistant], "rejected": [assistant],
     "margin": 1.5, "metadata": {...}}

Each message is ``{"role": ..., "content": ...}``; the system message is the exact persona
prompt the subject saw, checked against the response's ``conditioning_hash``.

Extra columns ("metadata", and "margin" for DPO) are safe: in trl 1.16.0 SFTTrainer and
DPOTrainer tokenize the columns they know and transformers' Trainer drops the others before
batching (``remove_unused_columns``, True by default; see ``_set_signature_columns_if_needed``
in trl/trainer/sft_trainer.py and dpo_trainer.py). DPOTrainer does not read "margin";
RewardTrainer does (its collator passes an optional "margin" into the loss), so a DPO file
also trains a reward model. Avoid the column names TRL reads for other purposes ("tools",
"chat_template_kwargs", "images").

The row builders (`score_responses`, `sft_rows`, `dpo_rows`) are pure: records in, rows
out. `read_run` gathers those records from a run directory without loading a model.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from personae.errors import InputError
from personae.evals.config import EvalConfig
from personae.evals.engine import short_hash, subject_messages
from personae.evals.run import open_run
from personae.evals.scored import Scored, score_responses
from personae.persona import load_template
from personae.persona.sample import resolve_personas

RejectedFrom = Literal["samples", "control"]
# The condition a control pair's rejected response comes from: the subject with no system
# prompt, its own voice (what character training pushes away from).
CONTROL = "no_persona"
# A PersonaGym rubric score of 4 on 1-5: the response fits the persona well.
DEFAULT_MIN_FIDELITY = 4.0


@dataclass(frozen=True)
class Thresholds:
    """What a response must reach to be trained on: an SFT row's response, a DPO pair's
    chosen one. None: not checked.

    >>> t = Thresholds(min_fidelity=4.0)
    >>> t.passes(4.0, None), t.passes(3.5, 2.0), t.passes(None, 2.0)
    (True, False, False)
    """

    min_fidelity: float | None = DEFAULT_MIN_FIDELITY
    min_consistency: float | None = None

    def passes(self, fidelity: float | None, consistency: float | None) -> bool:
        return all(value is not None and value >= bar
                   for value, bar in ((fidelity, self.min_fidelity),
                                      (consistency, self.min_consistency)) if bar is not None)


@dataclass
class Tally:
    """What an export took and left, for its count line."""

    rows: int = 0
    seen: int = 0  # SFT: persona responses; DPO: probes
    below: int = 0  # scored, but under the thresholds
    unscored: int = 0  # SFT: no value for a threshold or empty text; DPO: < 2 scored sides
    small_margin: int = 0

    def line(self, fmt: str, min_margin: float = 0.0) -> str:
        """The line ``personae export`` prints on stderr.

        >>> Tally(rows=12, seen=30, below=18).line("sft")
        'wrote 12 SFT rows (30 responses, 18 below the thresholds)'
        >>> Tally(rows=1, seen=4, unscored=1, small_margin=2).line("dpo")
        'wrote 1 DPO pair (4 probes, 1 without two scored responses, 2 with a margin of 0 or less)'
        """
        if fmt == "sft":
            head = (f"wrote {self.rows} SFT row{'s' * (self.rows != 1)} ({self.seen} "
                    f"response{'s' * (self.seen != 1)}")
            parts = [f"{self.below} below the thresholds"]
            if self.unscored:
                parts.append(f"{self.unscored} unscored")
        else:
            head = (f"wrote {self.rows} DPO pair{'s' * (self.rows != 1)} ({self.seen} "
                    f"probe{'s' * (self.seen != 1)}")
            parts = [f"{n} {what}" for n, what in (
                (self.unscored, "without two scored responses"),
                (self.small_margin, f"with a margin of {min_margin:g} or less"),
                (self.below, "with the chosen response below the thresholds")) if n]
        return head + "".join(f", {p}" for p in parts) + ")"


def check_conditioning(scored: Iterable[Scored], system_prompts: Mapping[str, str]) -> None:
    """Refuse unless each persona response's ``conditioning_hash`` is the hash of the system
    prompt rows would carry for its persona: a row must hold what the subject saw.

    >>> rec = {"persona_id": "ana", "condition": "persona",
    ...        "conditioning_hash": short_hash("You are Ana.")}
    >>> check_conditioning([Scored("k", rec, 4.0, None)], {"ana": "You are Ana."})
    >>> check_conditioning([Scored("k", rec, 4.0, None)], {"ana": "You are Bo."})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    personae.errors.InputError: persona 'ana': its system prompt is not the one the run used...
    """
    for s in scored:
        rec = s.response
        if rec["condition"] != "persona":
            continue
        pid = rec["persona_id"]
        if pid not in system_prompts:
            raise InputError(f"persona {pid!r}: no system prompt for it")
        now = short_hash(system_prompts[pid])
        if now != rec["conditioning_hash"]:
            raise InputError(
                f"persona {pid!r}: its system prompt is not the one the run used "
                f"(conditioning hash {now}, the run's {rec['conditioning_hash']}): the "
                "personas or the template changed since the run; restore them, or re-run "
                "the eval")


def _prompt(system: str, question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def _ids(s: Scored) -> dict[str, Any]:
    rec = s.response
    return {"response_key": s.key, "condition": rec["condition"], "sample": rec["sample"],
            "fidelity": s.fidelity, "consistency": s.consistency}


def _common(run_dir: str, s: Scored) -> dict[str, Any]:
    rec = s.response
    return {"run_dir": run_dir, "persona_id": rec["persona_id"], "probe_id": rec["probe_id"],
            "task": rec["task"], "model": rec.get("model"),
            "conditioning_hash": rec["conditioning_hash"]}


def sft_rows(scored: Sequence[Scored], system_prompts: Mapping[str, str],
             thresholds: Thresholds = Thresholds(), *, run_dir: str = ""
             ) -> tuple[list[dict[str, Any]], Tally]:
    """Chat rows ``{"messages": [system, user, assistant], "metadata": ids}`` of the persona
    responses (every sample) that reach ``thresholds``. A response without a value for a
    threshold (not measured, unparsable) or with empty text is left out as unscored.

    >>> rec = {"persona_id": "ana", "probe_id": "ana|Toxicity|0", "task": "Toxicity",
    ...        "condition": "persona", "sample": 0, "question": "Hi?", "text": "Hello.",
    ...        "conditioning_hash": short_hash("You are Ana.")}
    >>> rows, tally = sft_rows([Scored("ana|Toxicity|0|persona|0", rec, 4.5, 1.0)],
    ...                        {"ana": "You are Ana."})
    >>> [m["role"] for m in rows[0]["messages"]], rows[0]["metadata"]["fidelity"]
    (['system', 'user', 'assistant'], 4.5)
    >>> tally.line("sft")
    'wrote 1 SFT row (1 response, 0 below the thresholds)'
    """
    check_conditioning(scored, system_prompts)
    rows: list[dict[str, Any]] = []
    tally = Tally()
    for s in scored:
        rec = s.response
        if rec["condition"] != "persona":
            continue
        tally.seen += 1
        bars = ((s.fidelity, thresholds.min_fidelity),
                (s.consistency, thresholds.min_consistency))
        if not rec["text"].strip() or any(v is None for v, bar in bars if bar is not None):
            tally.unscored += 1
            continue
        if not thresholds.passes(s.fidelity, s.consistency):
            tally.below += 1
            continue
        rows.append({
            "messages": [*_prompt(system_prompts[rec["persona_id"]], rec["question"]),
                         *_assistant(rec["text"])],
            "metadata": {**_common(run_dir, s), **_ids(s)}})
    tally.rows = len(rows)
    return rows, tally


def _rank(s: Scored) -> tuple[float, float, int]:
    """Fidelity first, then consistency (a response without it ranks below one with it);
    among equals the earlier sample, so the choice does not depend on record order."""
    assert s.fidelity is not None
    return (s.fidelity, -math.inf if s.consistency is None else s.consistency,
            -s.response["sample"])


def dpo_rows(scored: Sequence[Scored], system_prompts: Mapping[str, str], *,
             rejected_from: RejectedFrom = "samples", min_margin: float = 0.0,
             thresholds: Thresholds = Thresholds(min_fidelity=None), run_dir: str = ""
             ) -> tuple[list[dict[str, Any]], Tally]:
    """Preference pairs, one per probe at most.

    ``rejected_from="samples"``: among the persona samples of a probe with a parsed
    fidelity, chosen is the best and rejected the worst, ranked by fidelity then
    consistency (APC-style). ``"control"``: chosen is the best persona sample, rejected the
    subject's answer with no persona prompt (the ``no_persona`` condition), still under the
    persona's prompt. The margin is the difference of fidelity (the PersonaGym 1-5 scale);
    consistency only breaks ties when picking the best and the worst, so a pair needs a
    margin over ``min_margin`` (>= 0) and a parsed fidelity on both sides. The chosen
    response must also reach ``thresholds``.

    >>> def rec(condition, sample, text):
    ...     return {"persona_id": "ana", "probe_id": "q1", "task": "Toxicity",
    ...             "condition": condition, "sample": sample, "question": "Hi?",
    ...             "text": text, "conditioning_hash": short_hash("You are Ana.")}
    >>> scored = [Scored("q1|persona|0", rec("persona", 0, "Olá!"), 5.0, 1.0),
    ...           Scored("q1|persona|1", rec("persona", 1, "As an AI..."), 2.0, 0.0)]
    >>> rows, tally = dpo_rows(scored, {"ana": "You are Ana."})
    >>> rows[0]["chosen"], rows[0]["rejected"][0]["content"], rows[0]["margin"]
    ([{'role': 'assistant', 'content': 'Olá!'}], 'As an AI...', 3.0)
    """
    if min_margin < 0:
        raise InputError(f"--min-margin {min_margin:g}: must be 0 or more")
    check_conditioning(scored, system_prompts)
    by_probe: dict[str, dict[str, list[Scored]]] = defaultdict(lambda: defaultdict(list))
    for s in scored:
        if s.fidelity is not None and s.response["text"].strip():
            by_probe[s.response["probe_id"]][s.response["condition"]].append(s)
    probes = list(dict.fromkeys(s.response["probe_id"] for s in scored
                                if s.response["condition"] == "persona"))
    rows: list[dict[str, Any]] = []
    tally = Tally(seen=len(probes))
    for probe in probes:
        own = sorted(by_probe[probe]["persona"], key=_rank, reverse=True)
        others = own[1:] if rejected_from == "samples" else by_probe[probe][CONTROL][:1]
        if not own or not others:
            tally.unscored += 1
            continue
        chosen, rejected = own[0], (others[-1] if rejected_from == "samples" else others[0])
        assert chosen.fidelity is not None and rejected.fidelity is not None
        margin = chosen.fidelity - rejected.fidelity
        if margin <= min_margin:
            tally.small_margin += 1
            continue
        if not thresholds.passes(chosen.fidelity, chosen.consistency):
            tally.below += 1
            continue
        rec = chosen.response
        rows.append({
            "prompt": _prompt(system_prompts[rec["persona_id"]], rec["question"]),
            "chosen": _assistant(rec["text"]),
            "rejected": _assistant(rejected.response["text"]),
            "margin": margin,
            "metadata": {**_common(run_dir, chosen), "rejected_from": rejected_from,
                         "chosen": _ids(chosen), "rejected": _ids(rejected)}})
    tally.rows = len(rows)
    return rows, tally


@dataclass
class RunRecords:
    """What an export reads from an eval run: its settings, its scored responses and the
    system prompt of each of its personas (rebuilt as the engine renders it)."""

    run_dir: Path
    config: EvalConfig
    scored: list[Scored]
    system_prompts: dict[str, str]


def read_run(run_dir: str | Path) -> RunRecords:
    """An eval run's responses with their scores, and its personas' system prompts, from the
    store alone (no model). A one-line error for another kind of run, or a persona the
    run's personas source no longer has."""
    store, config = open_run(run_dir)
    try:
        responses = list(store.items("response"))
        scored = score_responses(responses, (r for _, r in store.items("judgement")),
                                 (r for _, r in store.items("nli")), config.judges)
    finally:
        store.close()
    by_id = {p.id: p for p in resolve_personas(config.personas)}
    template = load_template(config.template)
    prompts: dict[str, str] = {}
    for pid in dict.fromkeys(r["persona_id"] for _, r in responses):
        if pid not in by_id:
            raise InputError(f"persona {pid!r} of the run in {run_dir} is not in "
                             f"{config.personas} any more; restore it, or re-run the eval")
        prompts[pid] = subject_messages(by_id[pid], "persona", "", template)[0].content
    # Absolute, so a row's ids lead back to the run from wherever the file is read.
    return RunRecords(Path(run_dir).resolve(), config, scored, prompts)


def training_rows(run: RunRecords, fmt: Literal["sft", "dpo"], *,
                  thresholds: Thresholds, rejected_from: RejectedFrom = "samples",
                  min_margin: float = 0.0) -> tuple[list[dict[str, Any]], Tally]:
    """SFT rows or DPO pairs of a run read by `read_run`, after checking that the run
    measured what the thresholds and the ranking need (one-line errors saying what to
    re-run)."""
    suites = run.config.suites
    needs = {"fidelity": thresholds.min_fidelity is not None or fmt == "dpo",
             "consistency": thresholds.min_consistency is not None}
    for suite, needed in needs.items():
        if needed and suite not in suites:
            flag = {"fidelity": "--min-fidelity", "consistency": "--min-consistency"}[suite]
            why = "to rank responses" if suite == "fidelity" and fmt == "dpo" else f"for {flag}"
            raise InputError(f"{run.run_dir}: the run did not measure {suite} (its suites: "
                             f"{', '.join(suites)}), needed {why}; re-run the eval with "
                             f"--suite {','.join([*suites, suite])}")
    if fmt == "sft":
        return sft_rows(run.scored, run.system_prompts, thresholds, run_dir=str(run.run_dir))
    if rejected_from == "samples" and run.config.samples < 2:
        raise InputError(f"{run.run_dir}: the run has one response per probe; DPO pairs from "
                         "samples need two or more: re-run the eval with --samples 2, or use "
                         "--rejected-from control")
    return dpo_rows(run.scored, run.system_prompts, rejected_from=rejected_from,
                    min_margin=min_margin, thresholds=thresholds, run_dir=str(run.run_dir))
