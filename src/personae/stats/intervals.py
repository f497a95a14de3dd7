"""Point estimates with confidence intervals: bootstrap means, paired deltas, Wilson proportions.

Everything personae aggregates is reported as a `MetricValue` (estimate, interval, n), so a reader
can tell a real difference from noise. The functions are pure: plain lists in, `MetricValue` out.
Missing observations (``None`` or NaN) are dropped, never counted as zero, and ``n`` counts only
what was used.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

BootstrapMethod = Literal["BCa", "percentile"]

__all__ = [
    "BootstrapMethod",
    "MetricValue",
    "mean_ci",
    "mean_of",
    "paired_delta_ci",
    "proportion_ci",
]


class MetricValue(BaseModel):
    """An estimate with its confidence interval and the number of observations behind it.

    ``value`` is None when the metric is undefined (no data, or a statistic that does not exist for
    this data); the interval is None when it could not be estimated. ``ci_low == ci_high`` marks a
    degenerate interval (one observation, or no variation), not a certain result.

    >>> m = MetricValue(value=3.42, ci_low=3.1, ci_high=3.71, n=40)
    >>> str(m)
    '3.42 [3.10, 3.71] n=40'
    >>> str(MetricValue(value=None, n=0))
    '— n=0'
    >>> m.as_dict()
    {'value': 3.42, 'ci_low': 3.1, 'ci_high': 3.71, 'n': 40}
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # NaN/inf serialise as invalid JSON and NaN is unequal to itself: None says "undefined".
    value: float | None = Field(default=None, allow_inf_nan=False)
    ci_low: float | None = Field(default=None, allow_inf_nan=False)
    ci_high: float | None = Field(default=None, allow_inf_nan=False)
    n: int = Field(ge=0)

    @model_validator(mode="after")
    def _interval_is_consistent(self) -> MetricValue:
        if (self.ci_low is None) != (self.ci_high is None):
            raise ValueError("ci_low and ci_high must both be set or both be None")
        if self.ci_low is not None and self.value is None:
            raise ValueError("an interval needs a value")
        if self.ci_low is not None and self.ci_high is not None and self.ci_low > self.ci_high:
            raise ValueError(f"ci_low {self.ci_low} > ci_high {self.ci_high}")
        return self

    def __format__(self, spec: str) -> str:
        """Format the numbers with ``spec`` (default ``.2f``): ``f"{m:.3f}"``."""
        spec = spec or ".2f"
        if self.value is None:
            return f"— n={self.n}"
        if self.ci_low is None or self.ci_high is None:
            return f"{self.value:{spec}} n={self.n}"
        return f"{self.value:{spec}} [{self.ci_low:{spec}}, {self.ci_high:{spec}}] n={self.n}"

    def __str__(self) -> str:
        return format(self, "")

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (floats or None, and an int)."""
        return self.model_dump(mode="json")


def as_float(v: object, where: str) -> float:
    """One observation as a float, NaN for missing. Infinity is an error: it is always a bug
    upstream (a failed parse, a division by zero), and it would silently poison a mean."""
    if v is None:
        return math.nan
    # Reject strings explicitly: float("3") would quietly accept an unparsed judge answer.
    if not isinstance(v, numbers.Real):
        raise TypeError(f"{where}: expected a number or None, got {type(v).__name__} {v!r}")
    f = float(v)
    if math.isinf(f):
        raise ValueError(f"{where}: infinite value")
    return f


def as_array(values: Iterable[float | None], name: str) -> np.ndarray:
    return np.array([as_float(v, f"{name}[{i}]") for i, v in enumerate(values)], dtype=float)


def check_params(confidence: float, n_resamples: int | None = None) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    if n_resamples is not None and n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")


def contain(value: float, low: float, high: float) -> tuple[float, float]:
    # BCa's bias correction on tiny or lumpy samples, and float rounding, can leave the estimate a
    # hair outside its interval; a report showing that reads as a bug, and widening is conservative.
    return min(low, value), max(high, value)


def _bootstrap_mean(
    x: np.ndarray, confidence: float, n_resamples: int, seed: int, method: BootstrapMethod
) -> MetricValue:
    n = int(x.size)
    if n == 0:
        return MetricValue(value=None, n=0)
    value = float(np.mean(x))
    if n == 1 or bool(np.all(x == x[0])):
        # Nothing to resample: a zero-width interval that says "no spread observed", not certainty.
        return MetricValue(value=value, ci_low=value, ci_high=value, n=n)

    def run(m: BootstrapMethod) -> tuple[float, float, bool]:
        # A fresh generator per attempt, so the percentile fallback does not depend on whether
        # BCa was tried first: the same data and seed always give the same interval.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from scipy import stats  # scipy takes ~0.7 s to import: only when needed

            res = stats.bootstrap(
                (x,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                method=m, vectorized=True, rng=np.random.default_rng(seed),
            )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        ok = not caught and math.isfinite(low) and math.isfinite(high)
        return low, high, ok

    low, high, ok = run(method)
    if not ok and method != "percentile":
        # BCa is undefined when the jackknife has no spread or every resample lands on one side
        # of the estimate (scipy then warns and/or returns NaN); the percentile interval still is.
        low, high, ok = run("percentile")
    if not (math.isfinite(low) and math.isfinite(high)):
        return MetricValue(value=value, n=n)
    low, high = contain(value, low, high)
    return MetricValue(value=value, ci_low=low, ci_high=high, n=n)


def mean_of(values: Iterable[float | None]) -> float | None:
    """Mean of the valid values (``None`` and NaN dropped), or None when there are none.

    >>> mean_of([1, None, 2, float("nan"), 6])
    3.0
    >>> mean_of([None]) is None
    True
    """
    x = as_array(values, "values")
    x = x[~np.isnan(x)]
    return float(np.mean(x)) if x.size else None


def mean_ci(
    values: Iterable[float | None],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    method: BootstrapMethod = "BCa",
) -> MetricValue:
    """Mean with a bootstrap confidence interval, reproducible for a given ``seed``.

    ``None`` and NaN are dropped and ``n`` counts the rest. No valid values gives an all-None
    result; one value, or all values equal, gives ``ci_low == ci_high == value``: a degenerate
    interval (no spread was observed), not a claim that the mean is known exactly.
    ``method="BCa"`` falls back to the percentile interval where BCa is undefined. The interval
    is widened if needed to contain the estimate.

    >>> m = mean_ci([2, 4, None, 4, 6, float("nan")], n_resamples=200)
    >>> m.value, m.n
    (4.0, 4)
    >>> m.ci_low < m.value < m.ci_high
    True
    >>> str(mean_ci([5.0]))
    '5.00 [5.00, 5.00] n=1'
    """
    check_params(confidence, n_resamples)
    x = as_array(values, "values")
    return _bootstrap_mean(x[~np.isnan(x)], confidence, n_resamples, seed, method)


def paired_delta_ci(
    a: Sequence[float | None],
    b: Sequence[float | None],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    method: BootstrapMethod = "BCa",
) -> MetricValue:
    """Mean of ``a[i] - b[i]`` with a paired bootstrap interval.

    Only pairs where both sides are valid count (``n`` is their number). Resampling the
    differences resamples whole pairs, so what the two conditions share per item (the same
    persona, the same question) cancels out: that is what makes the paired interval narrower
    than comparing two independent means. Raises ValueError when the lengths differ, since
    that means the pairing is already lost.

    >>> d = paired_delta_ci([3, 4, 5, None], [2, 2, 4, 1], n_resamples=200)
    >>> d.value, d.n
    (1.3333333333333333, 3)
    >>> d.ci_low <= d.value <= d.ci_high
    True
    """
    check_params(confidence, n_resamples)
    xa, xb = as_array(a, "a"), as_array(b, "b")
    if xa.size != xb.size:
        raise ValueError(f"paired samples differ in length: {xa.size} vs {xb.size}")
    both = ~(np.isnan(xa) | np.isnan(xb))
    return _bootstrap_mean(xa[both] - xb[both], confidence, n_resamples, seed, method)


def paired_t_ci(a: Sequence[float | None], b: Sequence[float | None], *,
                confidence: float = 0.95) -> MetricValue:
    """Mean of ``a[i] - b[i]`` with Student's t interval (the paired t-test's interval).

    With few pairs it is wider than a bootstrap interval, which uses the plug-in spread and
    normal-like tails: that is where it earns its place. Only pairs valid on both sides
    count; fewer than two give no interval, and no spread a degenerate one.

    >>> d = paired_t_ci([3, 4, 5, None], [2, 2, 4, 1])
    >>> round(d.value, 4), round(d.ci_low, 4), round(d.ci_high, 4), d.n
    (1.3333, -0.1009, 2.7676, 3)
    """
    check_params(confidence)
    xa, xb = as_array(a, "a"), as_array(b, "b")
    if xa.size != xb.size:
        raise ValueError(f"paired samples differ in length: {xa.size} vs {xb.size}")
    both = ~(np.isnan(xa) | np.isnan(xb))
    d = xa[both] - xb[both]
    if d.size == 0:
        return MetricValue(value=None, n=0)
    mean = float(np.mean(d))
    if d.size < 2:
        return MetricValue(value=mean, n=1)
    from scipy import stats  # scipy takes ~0.7 s to import: only when needed

    half = float(stats.t.ppf(0.5 + confidence / 2, d.size - 1) * np.std(d, ddof=1)
                 / math.sqrt(d.size))
    return MetricValue(value=mean, ci_low=mean - half, ci_high=mean + half, n=int(d.size))


def proportion_ci(successes: int, n: int, *, confidence: float = 0.95) -> MetricValue:
    """Share ``successes / n`` with a Wilson score interval (no continuity correction).

    Wilson rather than the normal (Wald) interval because it stays inside [0, 1] and keeps its
    coverage near 0 and 1 and for small n, which is where persona audits live. ``n == 0`` gives
    an all-None result.

    >>> str(proportion_ci(8, 10))
    '0.80 [0.49, 0.94] n=10'
    >>> proportion_ci(0, 0).value is None
    True
    """
    check_params(confidence)
    if isinstance(successes, bool) or isinstance(n, bool):
        raise TypeError("successes and n must be integers, not bool")
    if int(successes) != successes or int(n) != n:
        raise TypeError(f"successes and n must be integers, got {successes!r} and {n!r}")
    successes, n = int(successes), int(n)
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return MetricValue(value=None, n=0)
    from scipy import stats

    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    value = successes / n
    low, high = contain(value, float(ci.low), float(ci.high))
    return MetricValue(value=value, ci_low=low, ci_high=high, n=n)
