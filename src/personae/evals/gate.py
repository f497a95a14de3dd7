"""The persona quality gate: fail a CI job when a run's numbers are too low, or dropped
against a baseline run beyond judge noise.

Two kinds of condition, each one line when it fails:

- a floor (``--fail-under fidelity=3.5``) compares the run's estimate (`estimate`: the mean
  over probes of the persona condition, with a bootstrap CI over probes) with the floor:
  ``fidelity 3.21 [3.05, 3.37] < 3.5 (40 probes)``;
- a drop (``--baseline RUN_DIR --max-drop fidelity=0.3``) pairs the two runs probe by probe
  (persona by persona for the atomic metrics) and fails only when the drop's paired
  interval (bootstrap, widened to the t interval where that is wider) excludes zero *and*
  the drop exceeds the allowed one:
  ``fidelity dropped 0.42 [0.18, 0.66] vs baseline (max 0.3; 40 probes)``.

Every metric is judged by a model, so a gate never passes on a judge that failed its
reliability checks (this run's or the baseline's): that is a failed condition, with the reason.
The condition functions are pure; `check_gate` reads the stores.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personae.errors import InputError
from personae.evals.config import METRICS, EvalConfig
from personae.evals.run import open_run
from personae.evals.scored import score_responses
from personae.evals.summary import atomic_section, reliability_section
from personae.persona.sample import resolve_personas
from personae.runtime.store import RunStore
from personae.stats import MetricValue, mean_ci, mean_of, paired_delta_ci, paired_t_ci


def parse_thresholds(text: str | None, option: str) -> dict[str, float]:
    """``"fidelity=3.5,consistency=0.2"`` as ``{metric: number}``; a one-line error naming
    ``option`` for anything else.

    >>> parse_thresholds("fidelity=3.5, consistency=0.2", "--fail-under")
    {'fidelity': 3.5, 'consistency': 0.2}
    >>> parse_thresholds("fidelty=3", "--fail-under")
    Traceback (most recent call last):
    ...
    personae.errors.InputError: --fail-under: unknown metric 'fidelty'; did you mean 'fidelity'? (metrics: fidelity, consistency, acc_atom, ic_atom, rc_atom)
    """
    out: dict[str, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, number = (s.strip() for s in part.partition("="))
        if not sep:
            raise InputError(f"{option}: expected METRIC=NUMBER, got {part.strip()!r}")
        if name not in METRICS:
            close = difflib.get_close_matches(name, list(METRICS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InputError(f"{option}: unknown metric {name!r}{hint} "
                             f"(metrics: {', '.join(METRICS)})")
        try:
            out[name] = float(number)
        except ValueError:
            raise InputError(f"{option}: {name}={number!r} is not a number") from None
    return out


@dataclass(frozen=True)
class Condition:
    """One gate condition and whether it held. ``line`` says what was compared."""

    metric: str
    passed: bool
    line: str


@dataclass(frozen=True)
class GateResult:
    """Every condition a gate checked; it passes when all of them held."""

    conditions: tuple[Condition, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.conditions)

    @property
    def failures(self) -> list[str]:
        """One line per failed condition."""
        return [c.line for c in self.conditions if not c.passed]


def floor_condition(metric: str, value: MetricValue, floor: float, *,
                    units: str = "probes") -> Condition:
    """The run's estimate against a floor. A metric the run could not estimate fails.

    >>> floor_condition("fidelity", MetricValue(value=3.21, ci_low=3.05, ci_high=3.37, n=40),
    ...                 3.5).line
    'fidelity 3.21 [3.05, 3.37] < 3.5 (40 probes)'
    >>> floor_condition("fidelity", MetricValue(value=3.8, n=1), 3.5).passed
    True
    """
    if value.value is None:
        return Condition(metric, False, f"{metric}: no value to compare with {floor:g} "
                         "(nothing was scored)")
    ok = value.value >= floor
    return Condition(metric, ok, f"{metric} {_interval(value)} {'≥' if ok else '<'} "
                     f"{floor:g} ({value.n} {units})")


def paired_drop(current: Mapping[str, float], baseline: Mapping[str, float]) -> MetricValue:
    """The drop from ``baseline`` to ``current`` (positive: worse) over the units both
    scored, with the union of the paired BCa bootstrap interval and the paired t interval.

    Why both: with few probes the bootstrap interval alone is too narrow (measured in
    benchmarks/gate.py: 5.7 % false alarms at 5 probes where 2.5 % is nominal); the t
    interval is wider there and agrees with it from a few dozen probes on.

    >>> d = paired_drop({"a": 3.0, "b": 2.0, "c": 4.0}, {"a": 4.0, "b": 4.0, "c": 5.0})
    >>> round(d.value, 2), d.n, d.ci_low < 0 < d.value
    (1.33, 3, True)
    """
    common = [k for k in baseline if k in current]
    before, after = [baseline[k] for k in common], [current[k] for k in common]
    boot, t = paired_delta_ci(before, after), paired_t_ci(before, after)
    lows = [x for x in (boot.ci_low, t.ci_low) if x is not None]
    highs = [x for x in (boot.ci_high, t.ci_high) if x is not None]
    if boot.value is None or not lows:
        return boot
    return MetricValue(value=boot.value, ci_low=min(lows), ci_high=max(highs), n=boot.n)


def drop_condition(metric: str, drop: MetricValue, max_drop: float, *,
                   units: str = "probes") -> Condition:
    """A `paired_drop` against the allowed drop. It fails only when the interval excludes
    zero and the drop exceeds ``max_drop``: a drop inside the noise, or a small real one,
    passes. Fewer than two paired units fail: nothing can be told apart from noise.

    >>> base = {f"q{i}": 4.0 + (i % 3) * 0.5 for i in range(30)}
    >>> worse = {k: v - 1.0 for k, v in base.items()}
    >>> c = drop_condition("fidelity", paired_drop(worse, base), 0.3)
    >>> c.passed, c.line
    (False, 'fidelity dropped 1.00 [1.00, 1.00] vs baseline (max 0.3; 30 probes)')
    >>> drop_condition("fidelity", paired_drop(base, base), 0.3).passed
    True
    """
    if drop.n == 0 or drop.value is None:
        return Condition(metric, False, f"{metric}: no {units} scored in both this run and "
                         "the baseline, so nothing can be compared (same personas and "
                         "questions?)")
    if drop.n < 2 or drop.ci_low is None:
        return Condition(metric, False, f"{metric}: only 1 of the {units} was scored in both "
                         "this run and the baseline: too few to tell a drop from noise")
    dropped = drop.ci_low > 0 and drop.value > max_drop
    verb = "dropped" if drop.value >= 0 else "rose"
    shown = _interval(drop) if drop.value >= 0 else f"{-drop.value:.2f}"
    return Condition(metric, not dropped, f"{metric} {verb} {shown} vs baseline "
                     f"(max {max_drop:g}; {drop.n} {units})")


def _interval(m: MetricValue) -> str:
    """``3.21 [3.05, 3.37]`` (the n is said elsewhere, or not needed)."""
    if m.ci_low is None or m.ci_high is None:
        return f"{m.value:.2f}"
    return f"{m.value:.2f} [{m.ci_low:.2f}, {m.ci_high:.2f}]"


def judge_condition(metric: str, reliability: Mapping[str, Any], whose: str) -> Condition:
    """A judged metric's gate cannot pass on a judge that failed a reliability check. One
    that no check could measure passes, and the line says so.

    >>> bad = {"checks": [{"passed": False}], "verdict": "the judge failed 1 of 1 checks"}
    >>> judge_condition("fidelity", bad, "this run's")
    Condition(metric='fidelity', passed=False, line="fidelity: this run's judge failed its reliability checks: the judge failed 1 of 1 checks")
    """
    checks = reliability.get("checks", [])
    if any(c.get("passed") is False for c in checks):
        return Condition(metric, False, f"{metric}: {whose} judge failed its reliability "
                         f"checks: {reliability['verdict']}")
    ran = sum(c.get("passed") is True for c in checks)
    return Condition(metric, True, f"{metric}: {whose} judge passed the {ran} reliability "
                     "checks that could run" if ran else
                     f"{metric}: {whose} judge was not checked (no reliability check could "
                     "run)")


def estimate(store: RunStore, config: EvalConfig, metric: str) -> MetricValue:
    """``metric`` over the run's units (`unit_scores`) with a bootstrap CI. With the same
    number of questions per task and persona and one sample per probe (the defaults), the
    fidelity estimate equals the report's PersonaScore (extra samples are averaged in here;
    the report reads sample 0). Its interval is over probes, not personas, so it means
    something for a single persona too."""
    return mean_ci(list(unit_scores(store, config, metric).values()))


def unit_scores(store: RunStore, config: EvalConfig, metric: str) -> dict[str, float]:
    """Per-unit values of ``metric`` for pairing two runs: per probe (mean over samples and
    judges) for fidelity and consistency, per persona for the atomic metrics. Only the
    persona condition and ``config``'s judges count; unparsed judgements are left out."""
    if METRICS[metric] == "atomic":
        personas = resolve_personas(config.personas)
        section = atomic_section(store, config, personas) or {"per_persona": []}
        return {row["persona_id"]: row[metric] for row in section["per_persona"]
                if row[metric] is not None}
    scored = score_responses(store.items("response"),
                             (r for _, r in store.items("judgement")),
                             (r for _, r in store.items("nli")), config.judges)
    per_probe: dict[str, list[float | None]] = defaultdict(list)
    for s in scored:
        if s.response["condition"] == "persona":
            per_probe[s.response["probe_id"]].append(getattr(s, metric))
    means = {probe: mean_of(values) for probe, values in per_probe.items()}
    return {probe: v for probe, v in means.items() if v is not None}


def check_gate(store: RunStore, config: EvalConfig, *,
               fail_under: Mapping[str, float] | None = None,
               baseline: str | Path | None = None,
               max_drop: Mapping[str, float] | None = None) -> GateResult:
    """Check a finished eval against floors and a baseline run (no model is loaded).

    With a baseline and no ``max_drop``, every metric the run measured is compared with an
    allowed drop of 0: any drop the data shows beyond noise fails.
    """
    fail_under = dict(fail_under or {})
    conditions = [floor_condition(m, estimate(store, config, m), floor, units=_units(m))
                  for m, floor in fail_under.items()]
    drops: dict[str, float] = {}
    if baseline is not None:
        drops = dict(max_drop) if max_drop else {
            m: 0.0 for m, suite in METRICS.items()
            if suite in config.suites and unit_scores(store, config, m)}
        conditions += _baseline_conditions(store, config, Path(baseline), drops)
    reliability = reliability_section(store, config)
    for metric in dict.fromkeys([*fail_under, *drops]):
        conditions.append(judge_condition(metric, reliability, "this run's"))
    return GateResult(tuple(conditions))


def gate_run(run_dir: str | Path, *, fail_under: Mapping[str, float] | None = None,
             baseline: str | Path | None = None,
             max_drop: Mapping[str, float] | None = None) -> GateResult:
    """`check_gate` on the eval in ``run_dir`` (what ``personae eval --fail-under
    --baseline`` and the pytest fixture run after the eval)."""
    store, config = open_run(run_dir)
    try:
        return check_gate(store, config, fail_under=fail_under, baseline=baseline,
                          max_drop=max_drop)
    finally:
        store.close()


def _units(metric: str) -> str:
    return "personas" if METRICS[metric] == "atomic" else "probes"


def _baseline_conditions(store: RunStore, config: EvalConfig, baseline: Path,
                         drops: Mapping[str, float]) -> list[Condition]:
    base_store, base_config = open_run(baseline)
    try:
        if sorted(base_config.judges) != sorted(config.judges):
            return [Condition(m, False, f"{m}: the baseline was judged by "
                              f"{', '.join(base_config.judges)}, this run by "
                              f"{', '.join(config.judges)}; compare runs judged alike")
                    for m in drops]
        conditions = [drop_condition(m, paired_drop(unit_scores(store, config, m),
                                                    unit_scores(base_store, base_config, m)),
                                     allowed, units=_units(m))
                      for m, allowed in drops.items()]
        base_reliability = reliability_section(base_store, base_config)
        conditions += [judge_condition(m, base_reliability, "the baseline's") for m in drops]
        return conditions
    finally:
        base_store.close()


def check_suites(config: EvalConfig, metrics: Sequence[str]) -> None:
    """Refuse, before any model runs, a gate on a metric the eval will not measure."""
    for metric in metrics:
        if METRICS[metric] not in config.suites:
            raise InputError(f"the gate asks for {metric}, which the {METRICS[metric]} suite "
                             f"measures; add it with --suite "
                             f"{','.join([*config.suites, METRICS[metric]])}")
