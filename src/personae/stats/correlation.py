"""Correlation with a confidence interval: Spearman's rho, and Pearson's r."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict


class Correlation(BaseModel):
    """A correlation with a confidence interval, n and the two-sided p-value.

    ``rho`` is the coefficient: Spearman's rho from `spearman_ci`, Pearson's r from
    `pearson_ci` (``method`` names which). It is None when it is undefined (too few units,
    or no variation on one side); the interval is None when it cannot be estimated (Fisher z
    needs n ≥ 4 and |rho| < 1).
    """

    model_config = ConfigDict(frozen=True)

    rho: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int
    p: float | None = None
    method: str


def spearman_ci(levels: Sequence[float], scores: Sequence[float | None], *,
                confidence: float = 0.95,
                method: Literal["fisher", "bootstrap"] = "fisher",
                variance: Literal["fieller", "pearson"] = "fieller",
                n_resamples: int = 2000, seed: int = 0) -> Correlation:
    """Spearman's rho between prompted levels and measured scores, with a CI.

    Pairs with a missing score are dropped (n counts the rest). ``fisher``: ``tanh(atanh(ρ)
    ± z·se)`` with ``se² = 1.06/(n−3)`` (Fieller, Hartley & Pearson 1957; ``variance=
    "pearson"`` uses Pearson's ``1/(n−3)``); ``bootstrap``: percentile interval of rho over
    ``n_resamples`` paired resamples of the units (scipy), reproducible for a ``seed``.

    >>> c = spearman_ci([1, 2, 3, 4, 5, 6, 7, 8, 9], [1.2, 1.9, 1.5, 2.8, 3.0, 3.1, 4.2, 3.9, 4.5])
    >>> round(c.rho, 3), round(c.ci_low, 3), round(c.ci_high, 3), c.n
    (0.967, 0.838, 0.993, 9)
    """
    from scipy import stats

    x, y = _paired(levels, scores, confidence, names="levels and scores")
    n = len(x)
    label = (f"Fisher z ({variance} variance)" if method == "fisher"
             else f"bootstrap percentile ({n_resamples} paired resamples)")
    if n < 2 or not _varies(x, y):
        return Correlation(rho=None, n=n, method=label)
    res = stats.spearmanr(x, y)
    rho, p = float(res.statistic), float(res.pvalue)
    p_value = p if math.isfinite(p) else None
    low: float | None = None
    high: float | None = None
    if method == "fisher":
        if n >= 4:
            if abs(rho) >= 1.0:
                pass  # atanh(±1) is infinite: no interval (a perfect rank on few units
                # happens by chance; a degenerate [1, 1] would read as certainty)
            else:
                se = math.sqrt((1.06 if variance == "fieller" else 1.0) / (n - 3))
                z, crit = math.atanh(rho), float(stats.norm.ppf(0.5 + confidence / 2))
                low, high = math.tanh(z - crit * se), math.tanh(z + crit * se)
    elif method == "bootstrap":
        boot = stats.bootstrap(
            (x, y), lambda a, b: stats.spearmanr(a, b).statistic, paired=True,
            vectorized=False, n_resamples=n_resamples, confidence_level=confidence,
            method="percentile", rng=np.random.default_rng(seed))
        lo, hi = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            low, high = min(lo, rho), max(hi, rho)
    else:
        raise ValueError(f"unknown method {method!r}: use fisher or bootstrap")
    return Correlation(rho=rho, ci_low=low, ci_high=high, n=n, p=p_value, method=label)


# Within this of ±1, r is a perfect fit that float rounding moved off 1: snap it, so a
# perfect agreement reads 1.0 (and gets no interval) instead of 0.9999999999999998.
_PERFECT = 1e-12


def pearson_ci(x: Sequence[float | None], y: Sequence[float | None], *,
               confidence: float = 0.95) -> Correlation:
    """Pearson's r between paired values, with a Fisher z confidence interval.

    Pairs with a missing value on either side are dropped (n counts the rest). r needs
    n ≥ 3 (two points always lie on a line, so r = ±1 there says nothing) and variation
    on both sides, else it is None. The interval is ``tanh(atanh(r) ± z/√(n−3))``: Fisher's
    z is the large-sample theory of r itself (for Spearman's rho it is an approximation
    that needs the 1.06 correction), and it needs n ≥ 4 and |r| < 1.

    Use it rather than `spearman_ci` when both sides are levels on the same interval
    scale, such as a persona's declared Big Five level and the level a questionnaire
    measures (both 1-5): the question is then whether the levels agree linearly, and the
    spacing matters. Persona sets reuse a few half-point levels, so ranks would throw much
    of it away in ties. Pearson's r is also what convergent-validity studies of LLM
    personality report (e.g. Serapio-García et al. 2023), so the numbers compare.

    >>> c = pearson_ci([1, 2, 3, 4, 5], [1.5, 1.9, 3.2, 3.8, 5.1])
    >>> round(c.rho, 3), round(c.ci_low, 3), round(c.ci_high, 3), c.n
    (0.987, 0.811, 0.999, 5)
    >>> pearson_ci([1, 2], [2, 1]).rho is None
    True
    """
    from scipy import stats

    xs, ys = _paired(x, y, confidence, names="x and y")
    n = len(xs)
    label = "Pearson r, Fisher z (1/(n−3) variance)"
    if n < 3 or not _varies(xs, ys):
        return Correlation(rho=None, n=n, method=label)
    res = stats.pearsonr(xs, ys)
    r, p = float(res.statistic), float(res.pvalue)
    if 1.0 - abs(r) < _PERFECT:
        r, p = math.copysign(1.0, r), 0.0
    low: float | None = None
    high: float | None = None
    if n >= 4 and abs(r) < 1.0:
        z, crit = math.atanh(r), float(stats.norm.ppf(0.5 + confidence / 2))
        se = 1.0 / math.sqrt(n - 3)
        low, high = math.tanh(z - crit * se), math.tanh(z + crit * se)
    return Correlation(rho=r, ci_low=low, ci_high=high, n=n,
                       p=p if math.isfinite(p) else None, method=label)


def _paired(x: Sequence[float | None], y: Sequence[float | None], confidence: float, *,
            names: str) -> tuple[np.ndarray, np.ndarray]:
    """The pairs with a finite value on both sides, as two arrays (bad arguments raise)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if len(x) != len(y):
        raise ValueError(f"{names} differ in length: {len(x)} vs {len(y)}")
    pairs = [(float(a), float(b)) for a, b in zip(x, y, strict=True)
             if a is not None and b is not None
             and math.isfinite(float(a)) and math.isfinite(float(b))]
    return np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])


def _varies(x: np.ndarray, y: np.ndarray) -> bool:
    return bool(len(x)) and not np.all(x == x[0]) and not np.all(y == y[0])
