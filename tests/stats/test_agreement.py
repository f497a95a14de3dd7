from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personae.stats import (
    MetricValue,
    alpha_ci,
    exact_agreement,
    krippendorff_alpha,
    mean_abs_difference,
)

N = None
# Krippendorff, K. (2011). "Computing Krippendorff's Alpha-Reliability", Annenberg School for
# Communication, Departmental Papers 43 (section C: 4 observers × 12 units, missing data). The
# paper reports alpha = .743 nominal, .815 ordinal, .849 interval, .797 ratio. The `krippendorff`
# package (0.9) reproduces .743/.815/.797 in its own docstring citing that paper (p. 8); all four
# are also checked against `_alpha_by_definition` below.
K2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
]


def _alpha_by_definition(data: list[list[float | None]], level: str) -> float:
    """alpha = 1 - Do/De from the coincidence matrix (Krippendorff 2011, eqs. for o_ck, n_c, δ²),
    written independently of the package so the wrapper is checked against the definition."""
    values = sorted({v for row in data for v in row if v is not None})
    idx = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))
    for unit in zip(*data, strict=True):
        vs = [v for v in unit if v is not None]
        if len(vs) < 2:
            continue
        for i, c in enumerate(vs):
            for j, k in enumerate(vs):
                if i != j:
                    o[idx[c], idx[k]] += 1 / (len(vs) - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()

    def delta2(ci: int, ki: int) -> float:
        c, k = values[ci], values[ki]
        if level == "nominal":
            return float(c != k)
        if level == "interval":
            return float((c - k) ** 2)
        if level == "ratio":
            return float(((c - k) / (c + k)) ** 2)
        lo, hi = min(ci, ki), max(ci, ki)  # ordinal
        return float((n_c[lo:hi + 1].sum() - (n_c[lo] + n_c[hi]) / 2) ** 2)

    d = np.array([[delta2(i, j) for j in range(len(values))] for i in range(len(values))])
    do = (o * d).sum() / n
    de = (np.outer(n_c, n_c) * d).sum() / (n * (n - 1))
    return 1 - do / de


@pytest.mark.parametrize(("level", "published"), [
    ("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797),
])
def test_alpha_reproduces_krippendorff_2011(level: str, published: float) -> None:
    a = krippendorff_alpha(K2011, level=level)  # type: ignore[arg-type]
    assert a is not None
    assert round(a, 3) == published
    assert a == pytest.approx(_alpha_by_definition(K2011, level), abs=1e-12)


def test_alpha_value_domain_and_nan_missing() -> None:
    assert krippendorff_alpha(K2011, value_domain=[1, 2, 3, 4, 5]) == pytest.approx(
        krippendorff_alpha(K2011))
    with_nan = [[math.nan if v is None else v for v in row] for row in K2011]
    assert krippendorff_alpha(with_nan) == krippendorff_alpha(K2011)
    with pytest.raises(ValueError, match="out-of-domain"):
        krippendorff_alpha(K2011, value_domain=[1, 2, 3])
    with pytest.raises(ValueError, match="equal row lengths"):
        krippendorff_alpha([[1, 2], [1]])


def test_alpha_undefined_cases_return_none() -> None:
    assert krippendorff_alpha([]) is None
    assert krippendorff_alpha([[1, 2, 3]]) is None  # one rater: nothing is pairable
    assert krippendorff_alpha([[1, 2, N], [N, 2, 3]]) is None  # one pairable unit
    assert krippendorff_alpha([[1, N, 3], [N, 2, N]]) is None  # no pairable unit
    # Perfect agreement on one value: 0/0, undefined rather than 1 (even with a wider domain).
    assert krippendorff_alpha([[4, 4, 4], [4, 4, 4]]) is None
    assert krippendorff_alpha([[4, 4, 4], [4, 4, 4]], value_domain=[1, 2, 3, 4, 5]) is None
    # Variation only in an unpairable unit does not count either.
    assert krippendorff_alpha([[4, 4, 1], [4, 4, N]]) is None
    # Perfect agreement with variation is 1.
    assert krippendorff_alpha([[1, 2, 3], [1, 2, 3]]) == 1.0


def test_alpha_ci_brackets_alpha_and_is_reproducible() -> None:
    m = alpha_ci(K2011, n_resamples=300)
    assert m.n == 11  # unit 12 has a single rating
    assert m.value == pytest.approx(krippendorff_alpha(K2011))
    assert m.ci_low is not None and m.ci_high is not None
    assert m.ci_low <= m.value <= m.ci_high <= 1.0
    assert 0.0 < m.ci_high - m.ci_low < 1.0
    assert alpha_ci(K2011, n_resamples=300) == m
    assert alpha_ci(K2011, n_resamples=300, seed=5) != m
    nominal = alpha_ci(K2011, level="nominal", n_resamples=300)
    assert nominal.value == pytest.approx(0.743, abs=5e-4)


def test_alpha_ci_undefined() -> None:
    assert alpha_ci([[3, 3, 3], [3, 3, N]]) == MetricValue(value=None, n=2)
    assert alpha_ci([[1, 2, N]]) == MetricValue(value=None, n=0)


def test_alpha_ci_narrows_with_more_units() -> None:
    rng = np.random.default_rng(0)

    def ratings(units: int) -> list[list[float | None]]:
        truth = rng.integers(1, 6, size=units)
        noisy = np.clip(truth + rng.integers(-1, 2, size=units), 1, 5)
        return [list(map(float, truth)), list(map(float, noisy))]

    small, large = alpha_ci(ratings(20), n_resamples=300), alpha_ci(ratings(400), n_resamples=300)
    assert large.ci_high - large.ci_low < (small.ci_high - small.ci_low) / 2


def test_exact_agreement() -> None:
    m = exact_agreement([1, 2, 3, N, 5, math.nan], [1, 2, 4, 4, 5, 5])
    assert (m.value, m.n) == (0.75, 4)
    assert m.ci_low is not None and m.ci_low < 0.75 < m.ci_high  # type: ignore[operator]
    assert exact_agreement(["yes", "no"], ["yes", "yes"]).value == 0.5
    assert exact_agreement([N], [1]) == MetricValue(value=None, n=0)
    with pytest.raises(ValueError, match="length"):
        exact_agreement([1], [1, 2])


def test_mean_abs_difference() -> None:
    assert mean_abs_difference([1, 2, 5, N], [2, 2, 3, 4]) == 1.0
    assert mean_abs_difference([N, 1], [1, N]) is None
    with pytest.raises(ValueError, match="length"):
        mean_abs_difference([1], [1, 2])


ratings_st = st.integers(1, 5) | st.none()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.integers(2, 4).flatmap(lambda r: st.integers(2, 10).flatmap(
    lambda u: st.lists(st.lists(ratings_st, min_size=u, max_size=u), min_size=r, max_size=r))),
    level=st.sampled_from(["nominal", "ordinal", "interval"]))
def test_alpha_matches_definition_on_random_data(data: list[list[int | None]], level: str) -> None:
    a = krippendorff_alpha(data, level=level)  # type: ignore[arg-type]
    pairable = [u for u in zip(*data, strict=True) if sum(v is not None for v in u) >= 2]
    distinct = Counter(v for u in pairable for v in u if v is not None)
    if len(pairable) < 2 or len(distinct) < 2:
        assert a is None
        return
    assert a == pytest.approx(_alpha_by_definition(data, level), abs=1e-9)  # type: ignore[arg-type]
    m = alpha_ci(data, level=level, n_resamples=50)  # type: ignore[arg-type]
    assert m.n == len(pairable) and m.value == pytest.approx(a)
    if m.ci_low is not None:
        assert m.ci_low <= m.value <= m.ci_high  # type: ignore[operator]
