"""Persona evals inside a test suite: run an eval, then assert on its numbers.

`persona_eval` runs (or resumes) an eval in a run directory named by its settings, so a test
re-run with nothing changed makes no model call; its `PersonaEvalResult` compares like
numbers and fails with lines a person can read::

    result = persona_eval(personas="bot.yaml", model="openai:bot@http://127.0.0.1:8000/v1",
                          judge="openai:judge@http://127.0.0.1:8001/v1")
    assert result.fidelity >= 3.5          # AssertionError: assert fidelity 3.21 [3.05, 3.37] ...
    result.assert_no_regression(baseline="runs/main", max_drop={"fidelity": 0.3})

The pytest plugin (`personae.testing.pytest_plugin`) hands this out as the ``persona_eval``
fixture.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from personae.errors import RunError
from personae.evals.config import METRICS, EvalConfig
from personae.evals.gate import estimate, gate_run
from personae.evals.run import EvalKind, open_run
from personae.runtime.settings import RUNS_DIR
from personae.runtime.spine import RunResult, run


class Score(float):
    """A metric's estimate: compares as a float, and shows its name, interval and n where an
    assertion prints it.

    >>> s = Score("fidelity", 3.21, 3.05, 3.37, 40)
    >>> s >= 3.5, repr(s)
    (False, 'fidelity 3.21 [3.05, 3.37] n=40')
    """

    def __new__(cls, metric: str, value: float, ci_low: float | None, ci_high: float | None,
                n: int) -> Self:
        return super().__new__(cls, value)

    def __init__(self, metric: str, value: float, ci_low: float | None,
                 ci_high: float | None, n: int) -> None:
        self.metric, self.ci_low, self.ci_high, self.n = metric, ci_low, ci_high, n

    def __repr__(self) -> str:
        interval = (f" [{self.ci_low:.2f}, {self.ci_high:.2f}]"
                    if self.ci_low is not None and self.ci_high is not None else "")
        return f"{self.metric} {float(self):.2f}{interval} n={self.n}"


class PersonaEvalResult:
    """A finished eval, for assertions. Reading a metric whose judge failed its reliability
    checks fails the test (with the reason) unless ``allow_unreliable_judge`` was given:
    a number from a judge that is not grading is no evidence either way."""

    def __init__(self, result: RunResult, *, allow_unreliable_judge: bool = False) -> None:
        self.run_dir = result.run_dir
        self.summary = result.summary
        self.model_calls = result.model_calls
        self.cache_hits = result.cache_hits
        self.allow_unreliable_judge = allow_unreliable_judge

    def __repr__(self) -> str:
        return f"<persona eval {self.run_dir}>"

    def score(self, metric: str) -> Score:
        """``metric`` (one of fidelity, consistency, acc_atom, ic_atom, rc_atom) with its CI."""
        if metric not in METRICS:
            raise AssertionError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
        reliability = self.summary.get("reliability") or {}
        if not self.allow_unreliable_judge and any(
                c.get("passed") is False for c in reliability.get("checks", [])):
            raise AssertionError(f"{metric}: the judge failed its reliability checks: "
                                 f"{reliability['verdict']} ({self.run_dir})")
        store, config = open_run(self.run_dir)
        try:
            value = estimate(store, config, metric)
        finally:
            store.close()
        if value.value is None:
            raise AssertionError(f"{metric} was not measured in {self.run_dir} (is the "
                                 f"{METRICS[metric]} suite in the eval's suites?)")
        return Score(metric, value.value, value.ci_low, value.ci_high, value.n)

    @property
    def fidelity(self) -> Score:
        """Mean rubric score (1–5) of the persona condition over probes: the report's
        PersonaScore when every persona has as many questions per task."""
        return self.score("fidelity")

    @property
    def consistency(self) -> Score:
        """Mean C-score of the persona condition's responses against the persona's facts."""
        return self.score("consistency")

    def assert_gate(self, *, fail_under: Mapping[str, float] | None = None,
                    baseline: str | Path | None = None,
                    max_drop: Mapping[str, float] | None = None) -> None:
        """The same gate as ``personae eval --fail-under/--baseline/--max-drop``; fails the
        test with one line per failed condition."""
        verdict = gate_run(self.run_dir, fail_under=fail_under, baseline=baseline,
                           max_drop=max_drop)
        if not verdict.passed:
            raise AssertionError("persona quality gate failed:\n  "
                                 + "\n  ".join(verdict.failures))

    def assert_no_regression(self, baseline: str | Path,
                             max_drop: Mapping[str, float] | None = None) -> None:
        """Fail when a metric dropped against ``baseline`` (a run directory) beyond noise and
        by more than ``max_drop`` (default: every measured metric, 0)."""
        self.assert_gate(baseline=baseline, max_drop=max_drop)


def persona_eval(*, personas: str, model: str = "bundled", judge: str | list[str] = "bundled",
                 runs_dir: str | Path = RUNS_DIR, use_cache: bool = True,
                 allow_unreliable_judge: bool = False, **settings: Any) -> PersonaEvalResult:
    """Run (or resume) an eval under ``runs_dir`` and return it for assertions. ``settings``
    are `EvalConfig` fields (``suites``, ``tasks``, ``per_task``, ``limit``, ``samples``...).
    A failed model call fails here with a `RunError`: a test never passes on part of a run.

    >>> import tempfile
    >>> from personae.testing.loopback import LoopbackServer
    >>> with LoopbackServer(reply="Therefore, the final score is 4.") as srv:
    ...     r = persona_eval(personas="personagym", model=f"openai:m@{srv.base_url}",
    ...                      judge=f"openai:j@{srv.base_url}", limit=1, per_task=1,
    ...                      tasks=["Toxicity"], suites=["fidelity"], reliability_sample=0,
    ...                      runs_dir=tempfile.mkdtemp())
    >>> r.fidelity >= 3.5, r.fidelity
    (True, fidelity 4.00 [4.00, 4.00] n=1)
    """
    judges = [judge] if isinstance(judge, str) else list(judge)
    config = EvalConfig.from_given({"personas": personas, "model": model, "judges": judges,
                                    "progress": "off", **settings})
    kind = EvalKind(config)
    result = run(kind, Path(runs_dir) / kind.default_run_dir().name, use_cache=use_cache)
    if result.failures:
        raise RunError(f"{len(result.failures)} model calls failed (first: "
                       f"{result.failures[0]}); the eval in {result.run_dir} is incomplete")
    return PersonaEvalResult(result, allow_unreliable_judge=allow_unreliable_judge)
