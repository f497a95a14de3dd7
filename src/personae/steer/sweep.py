"""The closed loop: steer with a vector over coefficients −k…+k and measure what moves.

For each coefficient the steered model answers held-out trait questions and a questionnaire
scale; then the *unsteered* model reads every steered response. Four measures per
coefficient, each with a CI:

- ``instrument``: the questionnaire domain score (``logprob`` mode, reverse keys applied),
  CI over items;
- ``text``: the independent embedding scorer (`TraitTextScorer`), CI over responses;
- ``projection``: the response tokens' activations at the steered layer projected on the unit
  vector, read by the unsteered model (so it measures the text, not the intervention itself);
- ``perplexity``: the unsteered model's perplexity of each steered response (coherence).

A measure *moves* when its means are monotone in the coefficient and the CI of Spearman's rho
(coefficient vs per-unit value) excludes 0. Coherence *holds* at a coefficient when the
perplexity stays within ``coherence_ratio`` × the unsteered perplexity.

Every completed unit is a record in the run store, so a killed sweep resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from personae.errors import InputError
from personae.instruments import load_questionnaire
from personae.instruments.administer import ItemAnswer, administer
from personae.instruments.scoring import reverse_key
from personae.models import ChatParams, Message, load_model, parse_model_spec
from personae.models.whitebox import encode, on_model_thread, score_responses
from personae.runtime.progress import ProgressReporter
from personae.runtime.settings import RUNS_DIR, RunSettings
from personae.runtime.spine import (
    Outcome,
    RunContext,
    RunKind,
    RunResult,
    recorded_warnings,
    run,
)
from personae.runtime.store import STORE_FILE, RunStore
from personae.stats import MetricValue, mean_ci, spearman_ci
from personae.steer.inputs import check_run_dir, require_hf_spec, require_residual_norms
from personae.steer.textscore import TraitTextScorer
from personae.steer.traits import load_trait
from personae.vectors.file import file_digest, load_vector
from personae.vectors.steering import Steering

MEASURES = ("instrument", "text", "projection", "perplexity")
# Which IPIP domain (and direction) a bundled trait speaks to, for the instrument measure.
TRAIT_DOMAINS: dict[str, tuple[str, int]] = {
    "extroverted": ("E", +1), "introverted": ("E", -1), "agreeable": ("A", +1),
    "conscientious": ("C", +1), "neurotic": ("N", +1), "curious": ("O", +1),
    "optimistic": ("N", -1), "pessimistic": ("N", +1),
}


class SweepConfig(RunSettings):
    """What a sweep runs. Bound to its run directory: a re-run with other settings is refused."""

    KIND = "sweep"
    EXTENDS = frozenset()
    SPEED = frozenset()

    vector: str
    vector_sha256: str = ""  # filled in from the file when the sweep starts; checked if given
    layer: int = Field(ge=0)
    coefficients: list[float] = Field(min_length=2)
    relative: bool = True  # × the layer's residual norm, as `personae steer sweep/apply` default
    trait: str | None = None  # trait name or file; default: the vector's trait
    model: str = "hf:bundled"
    questions: int = Field(default=12, ge=2)
    max_tokens: int = Field(default=48, ge=4)
    instrument: str = "ipip-120"
    # A domain id such as "E"; None: from TRAIT_DOMAINS (resolved when the sweep starts), or
    # no instrument measure for a trait not listed there.
    scale: str | None = None
    items: int | None = Field(default=None, ge=2)
    seed: int = 0
    coherence_ratio: float = Field(default=2.0, gt=1.0)


class InstrumentScale(BaseModel):
    """What the instrument column measures: a questionnaire domain, and which way the trait
    should move it (``sign`` -1: the trait lowers the domain, e.g. introverted on
    Extraversion)."""

    instrument: str  # as given: a bundled name or a file
    questionnaire: str = ""  # its name
    trait: str | None = None  # whose direction ``sign`` is
    scale: str | None = None  # domain id; None: not measured
    scale_name: str | None = None
    sign: int = 1
    items: int = 0

    @property
    def direction(self) -> str:
        return "reversed" if self.sign < 0 else "forward"

    @property
    def label(self) -> str:
        """``E Extraversion, reversed`` (the direction is named only when reversed).

        >>> InstrumentScale(instrument="ipip-120", scale="E", scale_name="Extraversion",
        ...                 sign=-1).label
        'E Extraversion, reversed'
        """
        if self.scale is None:
            return "no scale"
        name = f"{self.scale} {self.scale_name}" if self.scale_name else self.scale
        return f"{name}, reversed" if self.sign < 0 else name

    def as_dict(self) -> dict[str, Any]:
        return {**self.model_dump(), "direction": self.direction, "label": self.label}


def resolve_scale(trait: str, scale: str | None) -> tuple[str | None, int]:
    """The domain a trait's sweep scores and the direction the trait should move it:
    ``scale`` if given (reversed when the trait is known to lower that domain), else the
    bundled trait's entry in `TRAIT_DOMAINS`, else none.

    >>> resolve_scale("introverted", None), resolve_scale("introverted", "A")
    (('E', -1), ('A', 1))
    """
    known, sign = TRAIT_DOMAINS.get(trait, (None, 1))
    if scale is None:
        return known, sign
    return scale, sign if scale == known else 1


def symmetric_coefficients(k: float, steps: int) -> list[float]:
    """``steps`` evenly spaced coefficients from ``-k`` to ``+k`` (0 included when odd).

    >>> symmetric_coefficients(8, 5)
    [-8.0, -4.0, 0.0, 4.0, 8.0]
    """
    if k <= 0 or steps < 2:
        raise InputError(f"a sweep needs k > 0 and at least 2 steps (got k={k}, steps={steps})")
    return [round(float(c), 6) for c in np.linspace(-k, k, steps)]


def coef_key(c: float) -> str:
    return f"{c:g}"


def response_nll(logits: np.ndarray, ids: Sequence[int], start: int) -> np.ndarray:
    """Negative log-likelihood of each token ``ids[start:]`` given the tokens before it.

    ``logits`` has one row per position (row ``i`` predicts token ``i + 1``).

    >>> lg = np.log(np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]))
    >>> np.round(response_nll(lg, [0, 0, 1], 1), 3).tolist()
    [0.693, 2.303]
    """
    if not 1 <= start < len(ids):
        raise ValueError(f"start must be in 1..{len(ids) - 1}, got {start}")
    lg = np.asarray(logits, dtype=np.float64)
    logz = np.logaddexp.reduce(lg, axis=1)
    rows = np.arange(start - 1, len(ids) - 1)
    return logz[rows] - lg[rows, np.asarray(ids)[start:]]


def perplexity_ci(nll_means: Sequence[float], seed: int = 0) -> MetricValue:
    """Perplexity as exp of the mean per-token NLL, with the CI of that mean mapped through exp."""
    m = mean_ci(nll_means, seed=seed)
    if m.value is None:
        return m
    lo, hi = (m.ci_low, m.ci_high) if m.ci_low is not None else (None, None)
    return MetricValue(value=math.exp(m.value), ci_low=None if lo is None else math.exp(lo),
                       ci_high=None if hi is None else math.exp(hi), n=m.n)


def trend(coefs: Sequence[float], values: Sequence[float], means: Sequence[float | None],
          seed: int = 0) -> dict[str, Any]:
    """Spearman's rho (with CI) of per-unit values against the coefficient, and whether the
    per-coefficient means are monotone in it.

    >>> t = trend([0, 0, 1, 1, 2, 2], [1, 2, 3, 4, 5, 6], [1.5, 3.5, 5.5], seed=0)
    >>> t["monotone"], t["moves"], t["direction"]
    (True, True, 1)
    """
    rho = spearman_ci(coefs, values, seed=seed)
    clean = [m for m in means if m is not None]
    diffs = np.diff(clean) if len(clean) == len(means) else np.array([])
    direction = 0
    if diffs.size and np.all(diffs > 0):
        direction = 1
    elif diffs.size and np.all(diffs < 0):
        direction = -1
    excludes_zero = (rho.ci_low is not None and rho.ci_high is not None
                     and (rho.ci_low > 0 or rho.ci_high < 0))
    return {"rho": rho.model_dump(), "monotone": direction != 0, "direction": direction,
            "moves": bool(direction != 0 and excludes_zero)}


def summarise(config: SweepConfig, store: RunStore,
              expected: dict[str, int] | None = None,
              instrument: InstrumentScale | None = None) -> dict[str, Any]:
    """Per-coefficient measures with CIs, trends and the coherence verdict, from the store.

    ``expected`` gives the direction each measure should move in (+1 up, -1 down) if the
    vector does what its trait says: text and projection up; the instrument per its domain
    (``instrument``: what its column measures, recorded in the summary).
    """
    coefs = config.coefficients
    rows: list[dict[str, Any]] = []
    units: dict[str, tuple[list[float], list[float]]] = {m: ([], []) for m in MEASURES}
    for c in coefs:
        key = coef_key(c)
        measures = [d for _, d in store.items("measure") if coef_key(d["coefficient"]) == key]
        items = [d for _, d in store.items("item") if coef_key(d["coefficient"]) == key]
        values = {
            "instrument": [d["keyed"] for d in items if d.get("keyed") is not None],
            "text": [d["text_score"] for d in measures],
            "projection": [d["projection"] for d in measures],
            "perplexity": [d["nll"] for d in measures],
        }
        row: dict[str, Any] = {"coefficient": c}
        for name, vals in values.items():
            row[name] = (perplexity_ci(vals, config.seed) if name == "perplexity"
                         else mean_ci(vals, seed=config.seed)).as_dict()
            units[name][0].extend([c] * len(vals))
            units[name][1].extend(vals)
        row["coverage"] = mean_ci([d["coverage"] for d in items], seed=config.seed).as_dict()
        row["responses"] = len(measures)
        rows.append(row)
    trends = {
        name: trend(units[name][0], units[name][1], [r[name]["value"] for r in rows], config.seed)
        for name in MEASURES if units[name][1]
    }
    base = _unsteered(rows)
    for r in rows:
        ppl = r["perplexity"]["value"]
        r["coherent"] = (base is not None and ppl is not None
                         and ppl <= config.coherence_ratio * base)
    for name, t in trends.items():
        t["expected"] = (expected or {}).get(name)
    scale = instrument or InstrumentScale(instrument=config.instrument, scale=config.scale)
    return {"config": config.model_dump(), "instrument": scale.as_dict(), "rows": rows,
            "trends": trends, "coherent_everywhere": all(r["coherent"] for r in rows),
            "unsteered_perplexity": base}


def _unsteered(rows: list[dict[str, Any]]) -> float | None:
    zero = [r for r in rows if r["coefficient"] == 0]
    return zero[0]["perplexity"]["value"] if zero else None


def held_out_questions(questions: Sequence[str], n: int) -> list[str]:
    """The last ``n`` questions: extraction takes its questions from the front of the list."""
    if n > len(questions):
        raise InputError(f"the trait file has {len(questions)} questions; the sweep asked "
                         f"for {n}")
    return list(questions[-n:])


class Sweep(RunKind):
    """One sweep, its inputs checked and its model loaded; `personae.runtime.spine.run`
    does (or finishes) it."""

    KIND = "sweep"
    SETTINGS = SweepConfig
    uses_cache = False  # the steered model's calls are not cached

    def __init__(self, config: SweepConfig, *, base: Any | None = None,
                 progress: str = "auto", run_dir: str | Path | None = None) -> None:
        self.progress = progress
        self._check_inputs(config)  # everything but the model, before the model loads
        if run_dir is not None:
            self.check_store(Path(run_dir))
        else:
            self.check_store(self.default_run_dir())
        if base is None:
            require_hf_spec(config.model, "the sweep")
            if parse_model_spec(config.model).options.get("steer"):
                raise InputError(f"--model {config.model}: the sweep's base model must be "
                                 "unsteered (drop the steer= option)")
        self.base = base if base is not None else load_model(config.model)
        if "hidden_states" not in self.base.capabilities:
            raise InputError(f"{config.model}: the sweep reads activations; use an hf: model")
        if getattr(self.base, "steerings", ()):
            raise InputError(f"{config.model}: the sweep's base model must be unsteered "
                             "(drop the steer= option)")
        self.identity = {**self._identity_without_model(),
                         "model_identity": self.base.identity}
        self.settings = self.config
        self.store: RunStore
        self.outcome = Outcome()

    def _check_inputs(self, given: SweepConfig) -> None:
        self.vector = load_vector(given.vector)
        self.vector.check_layer(given.layer)
        digest = file_digest(given.vector)
        if given.vector_sha256 and given.vector_sha256 != digest:
            raise InputError(f"{given.vector}: its sha256 is {digest[:16]}…, the sweep's "
                             f"settings name {given.vector_sha256[:16]}…: the file changed")
        if 0.0 not in given.coefficients:
            raise InputError("the sweep needs coefficient 0: it is the unsteered baseline "
                             "for coherence (use an odd number of --steps)")
        if given.relative:
            require_residual_norms(self.vector, given.vector)
        self.trait = load_trait(given.trait or _trait_ref(self.vector.meta))
        used = self.vector.meta.extra.get("n_questions")
        if self.vector.meta.trait == self.trait.name and isinstance(used, int) and \
                used + given.questions > len(self.trait.questions):
            raise InputError(f"the vector was extracted from the first {used} of the "
                             f"{len(self.trait.questions)} {self.trait.name} questions; "
                             f"{given.questions} held-out questions do not fit (--questions)")
        self.questions = held_out_questions(self.trait.questions, given.questions)
        domain, self.sign = resolve_scale(self.trait.name, given.scale)
        self.questionnaire = load_questionnaire(given.instrument)
        self.items = []
        if domain is not None:
            self.items = [i for i in self.questionnaire.items if i.scale == domain]
            if not self.items:
                raise InputError(f"{given.instrument}: no items score on scale {domain!r} "
                                 "(--scale)")
            self.items = self.items[: given.items]
        self.domain = domain
        names = {sc.id: sc.name for sc in self.questionnaire.scales}
        self.scale = InstrumentScale(instrument=given.instrument, trait=self.trait.name,
                                     questionnaire=self.questionnaire.name, scale=domain,
                                     scale_name=names.get(domain or ""), sign=self.sign,
                                     items=len(self.items))
        # What the sweep resolved is what it records: the summary's config names the domain
        # and the vector file's hash, not the defaults they were resolved from.
        self.config = given.model_copy(update={"scale": domain, "vector_sha256": digest})
        self.given = given

    def default_run_dir(self) -> Path:
        """``personae-runs/sweep-<vector>-L<layer>-<digest>``: the digest covers the settings
        and the contents of the vector, trait and questionnaire, so a changed setting or an
        edited file gets a run of its own."""
        blob = json.dumps(self._identity_without_model(), sort_keys=True)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
        return RUNS_DIR / f"sweep-{Path(self.config.vector).stem}-L{self.config.layer}-{digest}"

    def _identity_without_model(self) -> dict[str, Any]:
        # The settings as given (scale None: resolved from the trait), so a sweep stored
        # before the summary recorded the resolved scale still resumes; the file's hash
        # stands for the vector.
        return {**self.given.model_dump(), "vector_sha256": self.config.vector_sha256,
                "trait_sha256": self.trait.source_hash,
                "questionnaire": self.questionnaire.model_dump(mode="json")}

    def check_store(self, run_dir: Path) -> None:
        """Refuse, before the model loads, a run directory that holds a sweep with other
        settings (the model's identity is compared when the store is bound)."""
        if not (check_run_dir(run_dir) / STORE_FILE).is_file():
            return
        store = RunStore(run_dir)
        try:
            stored = store.get_meta("config")
        finally:
            store.close()
        if stored is None:
            return
        old, new = json.loads(stored), self._identity_without_model()
        changed = sorted(k for k in set(old) | set(new)
                         if k != "model_identity" and old.get(k) != new.get(k))
        if changed:
            raise InputError(f"{run_dir} holds a run with other settings ({', '.join(changed)} "
                             "differ); re-run with the same settings to resume, or pass "
                             "another --out")

    def bind(self, store: RunStore) -> None:
        """Use ``store``; refused when it holds a sweep with other settings. What the
        sweep resolved from its files (the scale, its direction) is kept with it, so the
        summary can be rewritten without them."""
        store.bind_config(self.identity)
        store.set_meta("sweep_scale", self.scale.model_dump_json())
        self.store = store

    @property
    def quiet(self) -> bool:
        return self.progress == "off"

    async def execute(self, ctx: RunContext) -> None:
        self.outcome = ctx.outcome  # counts the steered model's answers, one per call
        for c in self.config.coefficients:
            steered = steer_model(self.base, self.vector, self.config.layer, c,
                                  self.config.relative)
            await self._responses(steered, c)
            await self._instrument(steered, c)
        await self._readout()

    @classmethod
    def summarise(cls, store: RunStore, settings: RunSettings) -> dict[str, Any]:
        assert isinstance(settings, SweepConfig)
        scale = InstrumentScale.model_validate_json(store.get_meta("sweep_scale") or "{}")
        config = settings.model_copy(update={"scale": scale.scale})
        failures, notes = recorded_warnings(store)
        return {**summarise(config, store, {"text": 1, "projection": 1,
                                            "instrument": scale.sign}, scale),
                "warnings": [*notes, *(f"failed: {f}" for f in failures)]}

    async def _responses(self, model: Any, c: float) -> None:
        done = self.store.keys("response")
        todo = [(i, q) for i, q in enumerate(self.questions) if (coef_key(c), i) not in done]
        bar = ProgressReporter(f"responses at {coef_key(c)}", len(todo), mode=self.progress)
        params = ChatParams(max_tokens=self.config.max_tokens, temperature=0.0,
                            seed=self.config.seed)
        try:
            for chunk in _chunks(todo, max(1, self.base.batch_size)):
                done = await model.chat_batch([(_user(q), params) for _, q in chunk])
                self.outcome.model_calls += len(chunk)
                for (i, q), comp in zip(chunk, done, strict=True):
                    self.store.put("response", (coef_key(c), i),
                                   {"coefficient": c, "question": q, "text": comp.text,
                                    "tokens": comp.completion_tokens})
                    bar.advance()
        finally:
            bar.close()

    async def _instrument(self, model: Any, c: float) -> None:
        q, key = self.questionnaire, coef_key(c)
        stored = {d["item"]: d for _, d in self.store.items("item")
                  if coef_key(d["coefficient"]) == key}
        todo = [i.id for i in self.items if i.id not in stored]
        if not todo:
            return
        keyed = {i.id: i.reversed for i in self.items}

        def save(a: ItemAnswer) -> None:
            self.outcome.model_calls += 1
            value = a.value
            if value is not None and keyed[a.item_id]:
                value = reverse_key(value, q.low, q.high)
            self.store.put("item", (key, a.item_id),
                           {"coefficient": c, "item": a.item_id, "expected": a.value,
                            "keyed": value, "argmax": a.argmax, "coverage": a.coverage})
            bar.advance()

        bar = ProgressReporter(f"items at {key}", len(todo), mode=self.progress)
        try:
            await administer(model, q, mode="logprob", items=todo, on_answer=save,
                             seed=self.config.seed)
        finally:
            bar.close()

    async def _readout(self) -> None:
        done = self.store.keys("measure")
        # A measure is keyed as the response it reads.
        todo = [(k, d) for k, d in self.store.items("response") if k not in done]
        if not todo:
            return
        scorer = TraitTextScorer([p.pos for p in self.trait.instruction],
                                 [p.neg for p in self.trait.instruction])
        text_scores = scorer.score([d["text"] or " " for _, d in todo])
        bar = ProgressReporter("reading responses (unsteered)", len(todo), mode=self.progress)
        try:
            for chunk in _chunks(list(zip(todo, text_scores, strict=True)), 8):
                reads = await asyncio.to_thread(
                    read_responses, self.base, self.vector, self.config.layer,
                    [(_user(d["question"]), d["text"]) for (_, d), _ in chunk])
                for ((key, d), ts), (proj, nll, n) in zip(chunk, reads, strict=True):
                    self.store.put("measure", key, {"coefficient": d["coefficient"],
                                                    "text_score": float(ts),
                                                    "projection": proj, "nll": nll,
                                                    "tokens": n})
                    bar.advance()
        finally:
            bar.close()


def _trait_ref(meta: Any) -> str:
    src = meta.source or ""
    if src.startswith("bundled:"):
        return src.removeprefix("bundled:")
    return src if src and Path(src).is_file() else meta.trait


def _user(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


def _chunks(seq: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [seq[i: i + size] for i in range(0, len(seq), size)]


def steer_model(base: Any, vector: Any, layer: int, coefficient: float, relative: bool) -> Any:
    """``base`` steered at one layer (sharing its weights); ``base`` itself at coefficient 0."""
    if coefficient == 0:
        return base
    return base.with_steering([Steering(vector, layer, coefficient, relative)])


def read_responses(model: Any, vector: Any, layer: int,
                   items: Sequence[tuple[Sequence[Message], str]]
                   ) -> list[tuple[float | None, float | None, int]]:
    """For each (messages, response): the mean projection of the response tokens on the unit
    vector at ``layer`` and their mean NLL, both read by ``model`` as it runs."""
    keep = [i for i, (_, r) in enumerate(items) if r.strip()]
    out: list[tuple[float | None, float | None, int]] = [(None, None, 0)] * len(items)
    if not keep:
        return out
    projections = score_responses(model, vector, layer, [items[i] for i in keep])
    nlls = response_nlls(model, [items[i] for i in keep])
    for i, proj, nll in zip(keep, projections, nlls, strict=True):
        out[i] = (proj.mean, float(nll.mean()) if nll.size else None, int(nll.size))
    return out


def response_nlls(model: Any, items: Sequence[tuple[Sequence[Message], str]]
                  ) -> list[np.ndarray]:
    """Per-token NLL of each response given its prompt (one unbatched pass per item)."""
    out = []
    for messages, response in items:
        prompt = model.render_prompt(list(messages))
        ids, start = encode(model.tokenizer, prompt + response, len(prompt))
        logits = on_model_thread(model, lambda ids=ids: _logits(model.model, ids))
        out.append(response_nll(logits, ids, start) if start < len(ids)
                   else np.zeros(0))
    return out


def _logits(net: Any, ids: Sequence[int]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return net(input_ids=torch.tensor([list(ids)])).logits[0].float().numpy()


def run_sweep(config: SweepConfig, out: str | Path | None = None, *, base: Any | None = None,
              progress: str = "auto") -> RunResult:
    """Run (or resume) a sweep in ``out`` (default: `Sweep.default_run_dir`) and write its
    ``summary.json``.

    Example (loads the model, so not run here)::

        cfg = SweepConfig(vector="extroverted.safetensors", layer=15,
                          coefficients=symmetric_coefficients(0.5, 5), relative=True)
        result = run_sweep(cfg, "sweep-extroverted")
    """
    config = config.model_copy(update={"vector": str(vector_file(config.vector))})
    return run(Sweep(config, base=base, progress=progress, run_dir=out), out,  # input first
               use_cache=False)


def vector_file(path: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"{path}: no such vector file")
    return p.resolve()
