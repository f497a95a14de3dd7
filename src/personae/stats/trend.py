"""Linear trend over an ordered index (turns), with a confidence interval on the slope.

Drift is a slope: a per-turn metric regressed on the turn index. Turns of one conversation are
not independent (a persona that slipped at turn 5 is still off at turn 6), so when the points come
from several conversations the interval comes from resampling whole conversations (a cluster
bootstrap), not from the OLS standard error, which would treat every turn as a fresh draw.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from personae.stats.intervals import MetricValue, as_array, check_params, contain

__all__ = ["Slope", "SlopeMethod", "SlopeSign", "slope_ci"]

SlopeMethod = Literal["ols-t", "cluster-bootstrap", "none"]
SlopeSign = Literal["negative", "positive", "flat", "unknown"]


class Slope(MetricValue):
    """An OLS slope with its confidence interval, the points and independent series behind it:
    a `MetricValue` (same interval rules and formatting) plus ``clusters`` and ``method``.

    ``value`` is None when no slope exists (fewer than 2 distinct x); the interval is None when it
    could not be estimated, and ``method`` is then ``"none"``. ``ci_low == ci_high`` marks a
    perfect fit (no residual spread), not certainty.

    >>> s = Slope(value=-0.19, ci_low=-0.30, ci_high=-0.08, n=8, clusters=1, method="ols-t")
    >>> str(s), s.sign()
    ('-0.19 [-0.30, -0.08] n=8', 'negative')
    >>> Slope(value=None, n=1, clusters=1, method="none").sign()
    'unknown'
    """

    clusters: int = Field(ge=0)
    method: SlopeMethod

    def sign(self) -> SlopeSign:
        """Direction the interval supports: ``negative`` only if it lies wholly below 0,
        ``positive`` only if wholly above, ``flat`` if it contains 0 (a degenerate [0, 0]
        included), ``unknown`` without a slope or without an interval."""
        if self.value is None or self.ci_low is None or self.ci_high is None:
            return "unknown"
        if self.ci_high < 0:
            return "negative"
        if self.ci_low > 0:
            return "positive"
        return "flat"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the MetricValue keys (value, ci_low, ci_high, n) plus clusters, method
        and sign, so a slope can be drawn wherever a MetricValue can."""
        return {**self.model_dump(mode="json"), "sign": self.sign()}


def _perfect_fit(x: np.ndarray, y: np.ndarray, slope: float, intercept: float) -> bool:
    # Rounding leaves ~1e-16 residuals on an exact line; relative to the data's scale, that is 0.
    resid = y - (intercept + slope * x)
    scale = max(1.0, float(np.max(np.abs(y))), abs(slope) * float(np.max(np.abs(x))))
    return bool(np.max(np.abs(resid)) <= 1e-12 * scale)


def _cluster_bootstrap(
    x: np.ndarray, y: np.ndarray, codes: np.ndarray, k: int,
    confidence: float, n_resamples: int, seed: int,
) -> tuple[float, float] | None:
    """Percentile interval of the slope over resamples of whole clusters, or None if no resample
    had 2 distinct x. Each resample is a count vector over clusters, so the refit is a product
    of that count matrix with per-cluster sufficient statistics rather than a Python loop."""
    # Centre first: the sums-of-products formula cancels badly on uncentred data.
    xc, yc = x - x.mean(), y - y.mean()
    per_cluster = np.stack([
        np.bincount(codes, minlength=k).astype(float),
        np.bincount(codes, weights=xc, minlength=k),
        np.bincount(codes, weights=yc, minlength=k),
        np.bincount(codes, weights=xc * xc, minlength=k),
        np.bincount(codes, weights=xc * yc, minlength=k),
    ], axis=1)
    x_min = np.full(k, np.inf)
    x_max = np.full(k, -np.inf)
    np.minimum.at(x_min, codes, x)
    np.maximum.at(x_max, codes, x)

    rng = np.random.default_rng(seed)
    draws = rng.integers(0, k, size=(n_resamples, k))
    flat = (draws + k * np.arange(n_resamples)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_resamples * k).reshape(n_resamples, k)
    chosen = counts > 0
    # Exact test for "x has 2+ distinct values" (a near-zero denominator is not one).
    varies = (np.where(chosen, x_max, -np.inf).max(axis=1)
              > np.where(chosen, x_min, np.inf).min(axis=1))
    m, sx, sy, sxx, sxy = (counts @ per_cluster).T
    denom = m * sxx - sx * sx
    ok = varies & (denom > 0)
    if not ok.any():
        return None
    slopes = (m[ok] * sxy[ok] - sx[ok] * sy[ok]) / denom[ok]
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(slopes, [alpha, 1.0 - alpha])
    return float(low), float(high)


def slope_ci(
    x: Sequence[float],
    y: Sequence[float | None],
    clusters: Sequence[Hashable] | None = None,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Slope:
    """OLS slope of ``y`` on ``x`` with a confidence interval, reproducible for a given ``seed``.

    Pairs with a missing (None/NaN) ``x`` or ``y`` are dropped; ``n`` counts the rest and
    ``clusters`` the distinct cluster ids among them. Fewer than 2 distinct x: no slope. With one
    cluster (or ``clusters=None``) the interval is the t interval from the OLS standard error
    (df = n − 2); with 2+ clusters it is a percentile cluster bootstrap (whole clusters
    resampled with replacement, resamples whose x does not vary skipped). Two points: no interval
    (the fit is perfect by construction). An exact fit otherwise: ``[slope, slope]``.

    >>> s = slope_ci([1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 1, 1, 0, 0, 0, 0])
    >>> round(s.value, 3), s.method, s.sign()
    (-0.19, 'ols-t', 'negative')
    >>> str(slope_ci([0, 1, 2], [5, 5, None]))
    '0.00 n=2'
    >>> p = slope_ci([1, 2, 3, 1, 2, 3], [1, 3, 5, 2, 4, 6], clusters=["a"] * 3 + ["b"] * 3)
    >>> p.value, p.clusters, p.method
    (2.0, 2, 'cluster-bootstrap')
    """
    check_params(confidence, n_resamples)
    xs, ys = as_array(x, "x"), as_array(y, "y")
    if xs.size != ys.size:
        raise ValueError(f"x and y differ in length: {xs.size} vs {ys.size}")
    ids = list(clusters) if clusters is not None else [None] * xs.size
    if len(ids) != xs.size:
        raise ValueError(f"clusters and x differ in length: {len(ids)} vs {xs.size}")

    keep = ~(np.isnan(xs) | np.isnan(ys))
    xs, ys = xs[keep], ys[keep]
    index: dict[Hashable, int] = {}
    codes = np.array([index.setdefault(c, len(index)) for c, k in zip(ids, keep, strict=True)
                      if k], dtype=np.intp)
    n, k = int(xs.size), len(index)
    if n < 2 or bool(np.all(xs == xs[0])):
        return Slope(value=None, n=n, clusters=k, method="none")

    from scipy import stats  # scipy takes ~0.7 s to import: only when needed

    fit = stats.linregress(xs, ys)
    value, intercept = float(fit.slope), float(fit.intercept)
    if n == 2:
        return Slope(value=value, n=n, clusters=k, method="none")
    method: SlopeMethod = "cluster-bootstrap" if k >= 2 else "ols-t"
    if _perfect_fit(xs, ys, value, intercept):
        return Slope(value=value, ci_low=value, ci_high=value, n=n, clusters=k, method=method)
    if method == "ols-t":
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 2)) * float(fit.stderr)
        low, high = value - half, value + half
    else:
        interval = _cluster_bootstrap(xs, ys, codes, k, confidence, n_resamples, seed)
        if interval is None:
            return Slope(value=value, n=n, clusters=k, method="none")
        low, high = interval
    if not (math.isfinite(low) and math.isfinite(high)):
        return Slope(value=value, n=n, clusters=k, method="none")
    low, high = contain(value, low, high)
    return Slope(value=value, ci_low=low, ci_high=high, n=n, clusters=k, method=method)
