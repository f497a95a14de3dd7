"""Inter-rater agreement: Krippendorff's alpha (with a bootstrap interval), exact agreement, MAD.

Used to report how far a judge model (or several) can be trusted: two judges, or the same judge run
twice, rating the same responses. Data for alpha is raters × units, ``None`` (or NaN) for a rating
that is missing; alpha handles any number of raters and missing ratings, which is why it is the
reliability figure personae reports.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np

from personae.stats.intervals import (
    MetricValue,
    as_array,
    as_float,
    check_params,
    contain,
    proportion_ci,
)

Level = Literal["nominal", "ordinal", "interval", "ratio"]

__all__ = [
    "Level",
    "alpha_ci",
    "exact_agreement",
    "krippendorff_alpha",
    "mean_abs_difference",
]


def _reliability_matrix(data: Sequence[Sequence[float | None]]) -> np.ndarray:
    rows = [list(r) for r in data]
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise ValueError(
            f"data must be raters × units with equal row lengths, got lengths {sorted(widths)}"
        )
    width = widths.pop() if widths else 0
    m = np.array(
        [[as_float(v, f"data[{i}][{j}]") for j, v in enumerate(r)] for i, r in enumerate(rows)],
        dtype=float,
    )
    return m.reshape(len(rows), width)


def _pairable(m: np.ndarray) -> np.ndarray:
    # A unit rated only once has no pair to compare, so it carries no information about agreement.
    return (~np.isnan(m)).sum(axis=0) >= 2


def _alpha_of_matrix(
    m: np.ndarray, level: Level, value_domain: Sequence[float] | None
) -> float | None:
    pairable = _pairable(m)
    if int(pairable.sum()) < 2:
        return None
    observed = m[:, pairable]
    if np.unique(observed[~np.isnan(observed)]).size < 2:
        # Expected disagreement is zero, so alpha is 0/0. Everyone giving the same one value could
        # be perfect reliability or a rating scale that cannot discriminate: the data cannot tell.
        return None
    # Out-of-domain values (ValueError from the package) are bad input and propagate.
    with np.errstate(divide="ignore", invalid="ignore"):
        import krippendorff

        a = float(krippendorff.alpha(
            reliability_data=m, level_of_measurement=level, value_domain=value_domain,
        ))
    return a if math.isfinite(a) else None


def krippendorff_alpha(
    data: Sequence[Sequence[float | None]],
    *,
    level: Level = "ordinal",
    value_domain: Sequence[float] | None = None,
) -> float | None:
    """Krippendorff's alpha for ``data`` given as raters × units (``None`` = missing rating).

    A thin wrapper over the ``krippendorff`` package that returns None where alpha is undefined
    instead of raising or returning NaN: fewer than two pairable units (units with at least two
    ratings), or no variation at all among the pairable ratings. Note that perfect agreement on a
    single observed value is therefore undefined, not 1: alpha compares observed with expected
    disagreement, and with one value both are zero. ``value_domain`` lists the possible values in
    order; it matters for ``"interval"``/``"ratio"`` only through the values themselves, and a
    rating outside it raises ValueError.

    >>> round(krippendorff_alpha([[1, 2, 3, 3], [1, 2, 3, 4]], level="interval"), 3)
    0.889
    >>> krippendorff_alpha([[3, 3, 3], [3, 3, None]]) is None
    True
    """
    return _alpha_of_matrix(_reliability_matrix(data), level, value_domain)


def alpha_ci(
    data: Sequence[Sequence[float | None]],
    *,
    level: Level = "ordinal",
    value_domain: Sequence[float] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> MetricValue:
    """Krippendorff's alpha with a percentile bootstrap interval over units.

    Units (columns) are resampled with replacement, keeping each unit's ratings together: the
    question is how alpha would vary over other items rated by the same raters. ``n`` is the
    number of pairable units (at least two ratings); unpairable units add nothing to alpha and
    are left out of the resampling. Resamples where alpha is undefined (every drawn unit got the
    same single value) are dropped, so the interval is conditional on alpha being defined.
    Undefined alpha gives ``value=None``; the interval is widened if needed to contain the
    estimate.

    >>> m = alpha_ci([[1, 2, 3, 3, 2], [1, 2, 3, 4, 2]], level="interval", n_resamples=200)
    >>> m.n, round(m.value, 3)
    (5, 0.889)
    >>> m.ci_low <= m.value <= m.ci_high
    True
    """
    check_params(confidence, n_resamples)
    m = _reliability_matrix(data)
    pairable = _pairable(m)
    n = int(pairable.sum())
    value = _alpha_of_matrix(m, level, value_domain)
    if value is None:
        return MetricValue(value=None, n=n)

    units = m[:, pairable]
    domain = (np.asarray(value_domain, dtype=float) if value_domain is not None
              else np.unique(units[~np.isnan(units)]))
    # Units × values counts, built once: each resample is then a row selection, which is far
    # cheaper than rebuilding the reliability matrix 1000 times.
    counts = (units.T[:, :, None] == domain[None, None, :]).sum(axis=1)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_resamples, n))
    alphas: list[float] = []
    import krippendorff

    with np.errstate(divide="ignore", invalid="ignore"):
        for idx in draws:
            c = counts[idx]
            if int((c.sum(axis=0) > 0).sum()) < 2:
                continue
            a = float(krippendorff.alpha(
                value_counts=c, value_domain=domain, level_of_measurement=level,
            ))
            if math.isfinite(a):
                alphas.append(a)
    if not alphas:
        return MetricValue(value=value, n=n)
    tail = (1.0 - confidence) / 2.0
    low, high = (float(q) for q in np.quantile(alphas, [tail, 1.0 - tail]))
    low, high = contain(value, low, high)
    return MetricValue(value=value, ci_low=low, ci_high=high, n=n)


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def exact_agreement(
    a: Sequence[Hashable | None],
    b: Sequence[Hashable | None],
    *,
    confidence: float = 0.95,
) -> MetricValue:
    """Share of units where two raters gave the same value, with a Wilson interval.

    Only units both raters rated count (``n``); values are compared with ``==``, so labels work
    as well as numbers. Raises ValueError when the lengths differ.

    >>> str(exact_agreement([1, 2, 3, None, 5], [1, 2, 4, 4, 5]))
    '0.75 [0.30, 0.95] n=4'
    """
    if len(a) != len(b):
        raise ValueError(f"raters differ in length: {len(a)} vs {len(b)}")
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if not (_missing(x) or _missing(y))]
    same = sum(1 for x, y in pairs if x == y)
    return proportion_ci(same, len(pairs), confidence=confidence)


def mean_abs_difference(a: Sequence[float | None], b: Sequence[float | None]) -> float | None:
    """Mean of ``|a[i] - b[i]|`` over units both raters rated, or None when there are none.

    Complements alpha with a figure in scale points ("judges differ by 0.4 on a 1–5 scale").
    Raises ValueError when the lengths differ.

    >>> mean_abs_difference([1, 2, 5, None], [2, 2, 3, 4])
    1.0
    """
    xa, xb = as_array(a, "a"), as_array(b, "b")
    if xa.size != xb.size:
        raise ValueError(f"raters differ in length: {xa.size} vs {xb.size}")
    both = ~(np.isnan(xa) | np.isnan(xb))
    return float(np.mean(np.abs(xa[both] - xb[both]))) if both.any() else None
