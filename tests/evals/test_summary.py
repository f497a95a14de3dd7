"""Aggregation of stored judgements into the summary, on hand-made records."""

from __future__ import annotations

from pathlib import Path

import pytest

from personae import Persona
from personae.evals.config import EvalConfig
from personae.evals.summary import fidelity_section, reliability_section
from personae.runtime.store import RunStore

CONFIG = EvalConfig(tasks=["Expected Action", "Toxicity"], judges=["a", "b"])
PERSONAS = [Persona(id="p1", summary="x"), Persona(id="p2", summary="y")]


def judge(store: RunStore, pid: str, probe: str, task: str, condition: str, score: float | None,
          judge: str = "a", variant: str = "main") -> None:
    key = f"{pid}|{probe}|{condition}|0"
    store.put("judgement", f"{key}|{judge}|{variant}", {
        "response_key": key, "persona_id": pid, "task": task, "condition": condition,
        "judge": judge, "variant": variant, "score": score, "raw": ""})


def test_persona_score_delta_is_the_difference_of_persona_scores(tmp_path: Path) -> None:
    """p1: Expected Action has two questions (5 and 1 under the persona, 3 and 3 under the
    control) and Toxicity one (3 and 3). Both PersonaScores are 3.0 for p1, so the delta is
    0, not the +0.67 a pooled mean over questions would give."""
    store = RunStore(tmp_path)
    for pid in ("p1", "p2"):
        for cond, (ea1, ea2, tox) in {"persona": (5, 1, 3), "no_persona": (3, 3, 3),
                                      "assistant": (1, 1, 1)}.items():
            judge(store, pid, "expected-action-1", "Expected Action", cond, ea1)
            judge(store, pid, "expected-action-2", "Expected Action", cond, ea2)
            judge(store, pid, "toxicity-1", "Toxicity", cond, tox)
    fid = fidelity_section(store, CONFIG, PERSONAS)
    assert fid["by_condition"]["persona"]["persona_score"]["value"] == 3.0
    assert fid["deltas"]["no_persona"]["persona_score"]["value"] == 0.0
    assert fid["deltas"]["no_persona"]["persona_score"]["n"] == 2  # paired over personas
    assert fid["deltas"]["assistant"]["persona_score"]["value"] == 2.0
    toxicity = fid["deltas"]["assistant"]["tasks"]["Toxicity"]
    assert toxicity["value"] == 2.0 and toxicity["n"] == 2  # paired over questions


def test_a_persona_missing_a_task_has_no_persona_score(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    judge(store, "p1", "expected-action-1", "Expected Action", "persona", 4)
    judge(store, "p1", "toxicity-1", "Toxicity", "persona", None)  # unparsable
    judge(store, "p2", "expected-action-1", "Expected Action", "persona", 2)
    judge(store, "p2", "toxicity-1", "Toxicity", "persona", 4)
    fid = fidelity_section(store, CONFIG, PERSONAS)
    rows = {r["persona_id"]: r for r in fid["per_persona"]}
    assert rows["p1"]["persona_score"] is None and rows["p1"]["tasks"]["Expected Action"] == 4
    assert rows["p2"]["persona_score"] == 3.0
    overall = fid["by_condition"]["persona"]
    assert overall["persona_score"]["value"] == 3.0 and overall["persona_score"]["n"] == 1
    assert overall["unparsable"]["Toxicity"] == 1
    assert overall["tasks"]["Toxicity"]["n"] == 1  # the unparsable question is not a 0


def test_reliability_variants_of_other_judges_are_ignored(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    for i in range(8):
        judge(store, "p1", f"toxicity-{i}", "Toxicity", "persona", 1 + i % 5)
        # judge a (the first) is perfectly stable; judge b's variants are noise
        for variant in ("retest1", "retest2", "reversed"):
            judge(store, "p1", f"toxicity-{i}", "Toxicity", "persona", 1 + i % 5, "a", variant)
            judge(store, "p1", f"toxicity-{i}", "Toxicity", "persona", 5 - i % 5, "b", variant)
    checks = {c["name"]: c for c in reliability_section(store, CONFIG)["checks"]}
    assert checks["test_retest_alpha"]["value"]["value"] == pytest.approx(1.0)
    assert checks["order_sensitivity"]["passed"] is True
