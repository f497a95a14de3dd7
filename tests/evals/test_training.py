"""Training rows from plain records: scores as the summary computes them, thresholds,
ranking, margins, unparsable responses left out, and rows in TRL's conversational formats."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from personae.errors import InputError
from personae.evals.config import EvalConfig
from personae.evals.engine import short_hash, subject_messages
from personae.evals.scored import Scored, score_responses
from personae.evals.training import (
    RunRecords,
    Thresholds,
    dpo_rows,
    sft_rows,
    training_rows,
)
from personae.persona import Persona

SYSTEM = {"ana": "You are Ana, a night-shift nurse.", "bo": "You are Bo, a boat mechanic."}


def response(pid: str, probe: str, condition: str = "persona", sample: int = 0,
             text: str | None = None) -> tuple[str, dict[str, Any]]:
    key = f"{probe}|{condition}|{sample}"
    return key, {"persona_id": pid, "probe_id": probe, "task": "Expected Action",
                 "condition": condition, "sample": sample, "question": f"{probe}?",
                 "text": text if text is not None else f"answer {key}", "model": "m",
                 "conditioning_hash": short_hash(SYSTEM[pid] if condition == "persona"
                                                 else "")}


def scored(pid: str, probe: str, fidelity: float | None, consistency: float | None = None,
           condition: str = "persona", sample: int = 0, text: str | None = None) -> Scored:
    key, rec = response(pid, probe, condition, sample, text)
    return Scored(key, rec, fidelity, consistency)


def assert_message(m: Any, role: str) -> None:
    assert isinstance(m, dict) and set(m) == {"role", "content"}
    assert m["role"] == role and isinstance(m["content"], str) and m["content"].strip()


def assert_sft_row(row: dict[str, Any]) -> None:
    """TRL's conversational language-modeling row: "messages", a list of role/content
    dicts, system then user then assistant (plus metadata, which trainers drop)."""
    assert set(row) == {"messages", "metadata"}
    for m, role in zip(row["messages"], ("system", "user", "assistant"), strict=True):
        assert_message(m, role)


def assert_dpo_row(row: dict[str, Any]) -> None:
    """TRL's conversational preference row with an explicit prompt."""
    assert set(row) == {"prompt", "chosen", "rejected", "margin", "metadata"}
    for m, role in zip(row["prompt"], ("system", "user"), strict=True):
        assert_message(m, role)
    for side in ("chosen", "rejected"):
        assert len(row[side]) == 1
        assert_message(row[side][0], "assistant")
    assert isinstance(row["margin"], float) and row["margin"] > 0


def test_scores_are_the_judges_mean_and_the_first_judges_c_score() -> None:
    key, rec = response("ana", "q1")
    judgements = [
        {"response_key": key, "judge": "j1", "variant": "main", "score": 5},
        {"response_key": key, "judge": "j2", "variant": "main", "score": 3},
        {"response_key": key, "judge": "j2", "variant": "retest1", "score": 1},  # not main
        {"response_key": key, "judge": "old", "variant": "main", "score": 1},  # not the run's
    ]
    nli = [{"response_key": key, "judge": "j1", "label": lb}
           for lb in ("entailment", "entailment", "contradiction", None)]
    nli.append({"response_key": key, "judge": "j2", "label": "contradiction"})
    other, orec = response("ana", "q2")
    unparsable = [{"response_key": other, "judge": "j1", "variant": "main", "score": None}]
    [one, two] = score_responses([(key, rec), (other, orec)], judgements + unparsable, nli,
                                 judges=["j1", "j2"])
    assert (one.fidelity, one.consistency) == (4.0, 1.0)
    assert (two.fidelity, two.consistency) == (None, None)


def test_sft_keeps_persona_responses_that_reach_the_thresholds() -> None:
    rows_in = [scored("ana", "q1", 5.0, 2.0), scored("ana", "q1", 3.0, 2.0, sample=1),
               scored("ana", "q2", 4.0, -1.0), scored("ana", "q3", None, 1.0),
               scored("ana", "q4", 4.5, None), scored("ana", "q5", 5.0, 1.0, text="  "),
               scored("ana", "q1", 5.0, 2.0, condition="no_persona"),
               scored("bo", "q9", 4.0, 0.0)]
    rows, tally = sft_rows(rows_in, SYSTEM, Thresholds(min_fidelity=4.0))
    assert [r["metadata"]["response_key"] for r in rows] == [
        "q1|persona|0", "q2|persona|0", "q4|persona|0", "q9|persona|0"]
    assert (tally.seen, tally.below, tally.unscored) == (7, 1, 2)
    rows, tally = sft_rows(rows_in, SYSTEM, Thresholds(min_fidelity=4.0, min_consistency=0))
    assert [r["metadata"]["response_key"] for r in rows] == ["q1|persona|0", "q9|persona|0"]
    assert (tally.below, tally.unscored) == (2, 3)  # q4 has no consistency: unscored
    assert tally.line("sft") == "wrote 2 SFT rows (7 responses, 2 below the thresholds, " \
                                "3 unscored)"
    for row in rows:
        assert_sft_row(row)
    first = rows[0]
    assert first["messages"][0]["content"] == SYSTEM["ana"]
    assert first["messages"][2]["content"] == "answer q1|persona|0"
    assert first["metadata"] | {"run_dir": "r"} == {
        "run_dir": "r", "persona_id": "ana", "probe_id": "q1", "task": "Expected Action",
        "model": "m", "conditioning_hash": short_hash(SYSTEM["ana"]),
        "response_key": "q1|persona|0", "condition": "persona", "sample": 0,
        "fidelity": 5.0, "consistency": 2.0}


def test_the_prompt_is_what_the_engine_sends() -> None:
    ana = Persona(id="ana", name="Ana", summary="A night-shift nurse from Lisbon.")
    sent = subject_messages(ana, "persona", "q1?", "card")
    system = {"ana": sent[0].content}
    key, rec = response("ana", "q1")
    rec["conditioning_hash"] = short_hash(sent[0].content)
    rows, _ = sft_rows([Scored(key, rec, 5.0, None)], system)
    assert rows[0]["messages"][:2] == [m.model_dump(include={"role", "content"}) for m in sent]


def test_a_changed_system_prompt_is_refused_naming_the_persona() -> None:
    changed = {**SYSTEM, "bo": "You are Bo, a baker."}
    with pytest.raises(InputError, match="persona 'bo'.*changed since the run"):
        sft_rows([scored("ana", "q1", 5.0), scored("bo", "q2", 5.0)], changed)
    with pytest.raises(InputError, match="persona 'bo'"):
        dpo_rows([scored("bo", "q2", 5.0), scored("bo", "q2", 1.0, sample=1)], changed)


def test_dpo_ranks_samples_by_fidelity_then_consistency() -> None:
    probe = [scored("ana", "q1", 4.0, 0.0, sample=0), scored("ana", "q1", 5.0, 1.0, sample=1),
             scored("ana", "q1", 5.0, 2.0, sample=2), scored("ana", "q1", 2.0, 3.0, sample=3),
             scored("ana", "q1", 2.0, -1.0, sample=4), scored("ana", "q1", None, 9.0, sample=5)]
    rows, tally = dpo_rows(probe, SYSTEM)
    [row] = rows
    assert_dpo_row(row)
    meta = row["metadata"]
    assert meta["chosen"]["sample"] == 2 and meta["rejected"]["sample"] == 4
    assert row["chosen"][0]["content"] == "answer q1|persona|2"
    assert row["rejected"][0]["content"] == "answer q1|persona|4"
    assert row["margin"] == 3.0 and meta["rejected_from"] == "samples"
    assert row["prompt"] == [{"role": "system", "content": SYSTEM["ana"]},
                             {"role": "user", "content": "q1?"}]
    assert (tally.rows, tally.seen) == (1, 1)


def test_dpo_needs_a_margin_and_two_parsed_sides() -> None:
    rows_in = [
        scored("ana", "q1", 5.0, sample=0), scored("ana", "q1", 4.0, sample=1),  # margin 1
        scored("ana", "q2", 4.0, 2.0, sample=0), scored("ana", "q2", 4.0, -2.0, sample=1),
        scored("ana", "q3", 5.0, sample=0), scored("ana", "q3", None, sample=1),  # unparsable
        scored("ana", "q4", 5.0, sample=0), scored("ana", "q4", 1.0, sample=1, text=""),
        scored("bo", "q5", 5.0, sample=0), scored("bo", "q5", 2.0, sample=1),  # margin 3
    ]
    rows, tally = dpo_rows(rows_in, SYSTEM)
    assert [r["metadata"]["probe_id"] for r in rows] == ["q1", "q5"]
    # Equal fidelity: consistency picks the sides but the margin is 0, so no pair.
    assert (tally.unscored, tally.small_margin) == (2, 1)
    rows, tally = dpo_rows(rows_in, SYSTEM, min_margin=1.0)
    assert [r["metadata"]["probe_id"] for r in rows] == ["q5"]
    assert tally.line("dpo", 1.0) == ("wrote 1 DPO pair (5 probes, 2 without two scored "
                                      "responses, 2 with a margin of 1 or less)")
    rows, tally = dpo_rows(rows_in, SYSTEM, thresholds=Thresholds(min_fidelity=5.0,
                                                                  min_consistency=0.0))
    assert rows == [] and tally.below == 2  # q1, q5: the chosen one has no consistency
    with pytest.raises(InputError, match="min-margin"):
        dpo_rows(rows_in, SYSTEM, min_margin=-1)


def test_dpo_against_the_control_keeps_the_persona_prompt() -> None:
    rows_in = [scored("ana", "q1", 3.0, sample=0), scored("ana", "q1", 4.0, sample=1),
               scored("ana", "q1", 1.0, condition="no_persona"),
               scored("ana", "q1", 1.0, condition="assistant"),
               scored("ana", "q2", 4.0), scored("ana", "q2", None, condition="no_persona"),
               scored("ana", "q3", 4.0), scored("ana", "q3", 4.0, condition="no_persona")]
    rows, tally = dpo_rows(rows_in, SYSTEM, rejected_from="control")
    [row] = rows
    assert_dpo_row(row)
    assert row["prompt"][0] == {"role": "system", "content": SYSTEM["ana"]}
    assert row["chosen"][0]["content"] == "answer q1|persona|1"
    assert row["rejected"][0]["content"] == "answer q1|no_persona|0"
    assert row["metadata"]["rejected"]["condition"] == "no_persona"
    assert row["margin"] == 3.0
    assert (tally.seen, tally.unscored, tally.small_margin) == (3, 1, 1)


@pytest.mark.parametrize(("fmt", "settings", "thresholds", "needle"), [
    ("sft", {"suites": ["consistency"]}, Thresholds(), "did not measure fidelity"),
    ("sft", {"suites": ["fidelity"]}, Thresholds(min_consistency=0),
     "--suite fidelity,consistency"),
    ("dpo", {"suites": ["consistency"], "samples": 2}, Thresholds(None), "to rank responses"),
    ("dpo", {"samples": 1}, Thresholds(None), "--samples 2, or use --rejected-from control"),
])
def test_a_run_without_what_the_export_needs_says_what_to_re_run(
        fmt: str, settings: dict[str, Any], thresholds: Thresholds, needle: str) -> None:
    run = RunRecords(Path("r"), EvalConfig(**settings), [scored("ana", "q1", 5.0)], SYSTEM)
    with pytest.raises(InputError, match=re.escape(needle)):
        training_rows(run, fmt, thresholds=thresholds)  # type: ignore[arg-type]
    if fmt == "sft" and "consistency" not in settings["suites"]:
        return
    ok = RunRecords(Path("r"), EvalConfig(samples=2), run.scored, SYSTEM)
    assert training_rows(ok, fmt, thresholds=thresholds)[1].seen == 1  # type: ignore[arg-type]
