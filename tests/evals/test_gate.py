"""The gate's conditions on plain numbers: floors, drops beyond noise, the judge's checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from personae.errors import InputError
from personae.evals.gate import (
    GateResult,
    check_gate,
    drop_condition,
    floor_condition,
    judge_condition,
    paired_drop,
    parse_thresholds,
    unit_scores,
)
from personae.evals.run import open_run, run_eval
from personae.stats import MetricValue, paired_delta_ci
from tests.evals import test_engine as engine


def scores(n: int, mean: float, sd: float, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {f"p{i}": float(np.clip(np.round(mean + rng.normal(0, sd)), 1, 5)) for i in range(n)}


def test_a_floor_compares_the_estimate_and_shows_its_interval() -> None:
    below = floor_condition("fidelity", MetricValue(value=3.4, ci_low=3.2, ci_high=3.6, n=20),
                            3.5)
    assert not below.passed and below.line == "fidelity 3.40 [3.20, 3.60] < 3.5 (20 probes)"
    assert floor_condition("consistency", MetricValue(value=0.2, n=3), 0.2).passed
    nothing = floor_condition("fidelity", MetricValue(value=None, n=0), 1)
    assert not nothing.passed and "nothing was scored" in nothing.line


def test_a_drop_fails_only_beyond_noise_and_beyond_the_allowed_drop() -> None:
    base = scores(200, 3.8, 0.8, seed=1)
    # Same model, fresh noise: no alarm at any allowed drop.
    same = scores(200, 3.8, 0.8, seed=2)
    assert drop_condition("fidelity", paired_drop(same, base), 0.0).passed
    # A planted one-point drop is caught, and the line reads as the issue shows.
    worse = scores(200, 2.8, 0.8, seed=3)
    caught = drop_condition("fidelity", paired_drop(worse, base), 0.3)
    assert not caught.passed
    assert caught.line.startswith("fidelity dropped ") and caught.line.endswith(
        "vs baseline (max 0.3; 200 probes)")
    numbers = re.match(r"fidelity dropped ([\d.]+) \[([\d.]+), ([\d.]+)\]", caught.line)
    assert numbers is not None
    value, low, high = map(float, numbers.groups())
    assert 0.3 < low <= value <= high
    # A real drop smaller than the allowed one passes.
    assert drop_condition("fidelity", paired_drop(worse, base), 1.5).passed


def test_a_drop_on_few_probes_does_not_fail_on_noise() -> None:
    base = {"a": 4.0, "b": 3.0, "c": 5.0}
    noisy = {"a": 3.0, "b": 4.0, "c": 4.0}  # mean drop 0.33, but one probe rose
    assert drop_condition("fidelity", paired_drop(noisy, base), 0.0).passed
    # Five probes that all dropped a little: the bootstrap alone excludes zero, the t
    # interval (wider with few probes) does not, and the gate goes with the wider one.
    base = {k: 4.0 for k in "abcde"}
    slight = {"a": 4.0, "b": 4.0, "c": 3.0, "d": 3.0, "e": 3.0}
    boot = paired_delta_ci(list(base.values()), list(slight.values()))
    assert boot.ci_low is not None and boot.ci_low > 0
    drop = paired_drop(slight, base)
    assert drop.ci_low is not None and drop.ci_low < 0
    assert drop_condition("fidelity", drop, 0.0).passed


def test_a_rise_passes_and_says_so() -> None:
    base = {f"q{i}": 3.0 for i in range(5)}
    better = {k: 4.0 for k in base}
    cond = drop_condition("fidelity", paired_drop(better, base), 0.0)
    assert cond.passed and cond.line.startswith("fidelity rose 1.00 vs baseline")


@pytest.mark.parametrize(("current", "needle"), [
    ({"x": 1.0}, "no probes scored in both"),
    ({"a": 1.0}, "only 1 of the probes"),
])
def test_a_drop_that_cannot_be_measured_fails(current: dict[str, float], needle: str) -> None:
    cond = drop_condition("fidelity", paired_drop(current, {"a": 4.0, "b": 4.0}), 0.3)
    assert not cond.passed and needle in cond.line


def test_the_judges_checks_decide_first() -> None:
    failed = {"checks": [{"passed": True}, {"passed": False}], "verdict": "parse rate"}
    assert not judge_condition("fidelity", failed, "this run's").passed
    fine = judge_condition("fidelity", {"checks": [{"passed": True}, {"passed": None}]}, "x")
    assert fine.passed and "passed the 1 reliability checks" in fine.line
    unchecked = judge_condition("consistency", {"checks": [{"passed": None}]}, "x")
    assert unchecked.passed and "not checked" in unchecked.line
    result = GateResult((fine, judge_condition("fidelity", failed, "this run's")))
    assert not result.passed and result.failures == [
        "fidelity: this run's judge failed its reliability checks: parse rate"]


@pytest.mark.parametrize(("text", "needle"), [
    ("fidelity", "expected METRIC=NUMBER"),
    ("fidelity=abc", "is not a number"),
    ("consistancy=3", "unknown metric 'consistancy'; did you mean 'consistency'?"),
    ("vibes=3", "unknown metric 'vibes' (metrics: fidelity"),
])
def test_bad_thresholds_are_one_line_errors(text: str, needle: str) -> None:
    with pytest.raises(InputError) as err:
        parse_thresholds(text, "--fail-under")
    assert needle in str(err.value) and "\n" not in str(err.value)


@given(st.text(max_size=60))
def test_thresholds_parse_or_refuse(text: str) -> None:
    try:
        parsed = parse_thresholds(text, "--max-drop")
    except InputError as exc:
        assert str(exc).startswith("--max-drop: ")
    else:
        assert all(isinstance(v, float) for v in parsed.values())


def test_every_metric_is_gated_from_a_real_run_store(tmp_path: Path) -> None:
    """Per-unit values read from a run's records: fidelity and consistency per probe, the
    atomic metrics per persona; a run compared with itself never drops."""
    (tmp_path / "team.yaml").write_text(engine.PERSONAS)
    (tmp_path / "questions.json").write_text(json.dumps(engine.QUESTIONS))
    cfg = engine.config(tmp_path / "team.yaml", tmp_path / "questions.json", samples=2)
    run_eval(cfg, tmp_path / "run", models=engine.models())
    store, config = open_run(tmp_path / "run")
    try:
        assert len(unit_scores(store, config, "fidelity")) == 9  # 3 personas × 3 questions
        assert set(unit_scores(store, config, "acc_atom")) == {"ana", "bo"}  # with traits
        floors = {"fidelity": 4.5, "consistency": 0.5, "acc_atom": 0.0, "rc_atom": 0.0}
        verdict = check_gate(store, config, fail_under=floors, baseline=tmp_path / "run")
    finally:
        store.close()
    lines = [c.line for c in verdict.conditions]
    assert verdict.passed, lines
    assert "fidelity 5.00 [5.00, 5.00] ≥ 4.5 (9 probes)" in lines
    assert any(line.startswith("acc_atom ") and line.endswith("(2 personas)") for line in lines)
    # --baseline alone: every measured metric, no drop allowed
    assert {c.metric for c in verdict.conditions if "vs baseline" in c.line} == {
        "fidelity", "consistency", "acc_atom", "ic_atom", "rc_atom"}
