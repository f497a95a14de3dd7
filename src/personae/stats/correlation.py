"""Rank correlation with a confidence interval."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict


class Correlation(BaseModel):
    """Spearman's rho with a confidence interval, n and the two-sided p-value.

    ``rho`` is None when it is undefined (fewer than 2 units, or no variation on one side);
    the interval is None when it cannot be estimated (Fisher z needs n ≥ 4 and |rho| < 1).
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

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if len(levels) != len(scores):
        raise ValueError(f"levels and scores differ in length: {len(levels)} vs {len(scores)}")
    pairs = [(float(x), float(y)) for x, y in zip(levels, scores, strict=True)
             if y is not None and math.isfinite(float(y))]
    n = len(pairs)
    label = (f"Fisher z ({variance} variance)" if method == "fisher"
             else f"bootstrap percentile ({n_resamples} paired resamples)")
    x = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])
    if n < 2 or np.all(x == x[0]) or np.all(y == y[0]):
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
