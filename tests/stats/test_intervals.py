from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy import stats as scipy_stats

from personae.stats import (
    MetricValue,
    mean_ci,
    mean_of,
    paired_delta_ci,
    paired_t_ci,
    proportion_ci,
)

# --- MetricValue -------------------------------------------------------------------------------


def test_metric_value_formats_and_dumps() -> None:
    m = MetricValue(value=3.4215, ci_low=3.1, ci_high=3.71, n=40)
    assert str(m) == "3.42 [3.10, 3.71] n=40"
    assert f"{m:.1f}" == "3.4 [3.1, 3.7] n=40"
    assert str(MetricValue(value=None, n=0)) == "— n=0"
    assert str(MetricValue(value=0.5, n=3)) == "0.50 n=3"
    assert m.as_dict() == {"value": 3.4215, "ci_low": 3.1, "ci_high": 3.71, "n": 40}
    assert MetricValue(value=None, n=0).as_dict() == {
        "value": None, "ci_low": None, "ci_high": None, "n": 0}


def test_metric_value_is_frozen_and_validated() -> None:
    m = MetricValue(value=1.0, ci_low=0.0, ci_high=2.0, n=3)
    with pytest.raises(ValidationError):
        m.value = 2.0  # type: ignore[misc]
    for bad in [{"value": 1.0, "ci_low": 2.0, "ci_high": 0.0, "n": 3},  # reversed interval
                {"value": 1.0, "ci_low": 0.0, "n": 3},  # half an interval
                {"value": math.nan, "n": 3},  # NaN must be None
                {"value": None, "ci_low": 0.0, "ci_high": 1.0, "n": 3},  # interval, no estimate
                {"value": 1.0, "n": -1}]:
        with pytest.raises(ValidationError):
            MetricValue(**bad)


# --- proportion_ci -----------------------------------------------------------------------------


def test_wilson_matches_hand_computation() -> None:
    # Wilson: (k + z²/2)/(n + z²) ± z·sqrt(k(n-k)/n + z²/4)/(n + z²), z = 1.959964;
    # for 8/10 that is 0.716719 ± 0.226569 = [0.4902, 0.9433].
    m = proportion_ci(8, 10)
    assert m.value == 0.8 and m.n == 10
    assert m.ci_low == pytest.approx(0.4902, abs=5e-5)
    assert m.ci_high == pytest.approx(0.9433, abs=5e-5)
    z = 1.959963984540054
    for k, n in [(0, 7), (3, 7), (7, 7), (41, 120)]:
        centre = (k + z * z / 2) / (n + z * z)
        half = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
        got = proportion_ci(k, n)
        assert got.ci_low == pytest.approx(max(0.0, centre - half), abs=1e-9)
        assert got.ci_high == pytest.approx(min(1.0, centre + half), abs=1e-9)


def test_proportion_edges() -> None:
    assert proportion_ci(0, 0) == MetricValue(value=None, n=0)
    assert proportion_ci(8, 10, confidence=0.99).ci_low < proportion_ci(8, 10).ci_low
    with pytest.raises(ValueError):
        proportion_ci(11, 10)
    with pytest.raises(ValueError):
        proportion_ci(-1, 10)
    with pytest.raises(TypeError):
        proportion_ci(2.5, 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        proportion_ci(1, 2, confidence=1.0)


# --- mean_of / mean_ci -------------------------------------------------------------------------


def test_mean_of_ignores_missing() -> None:
    assert mean_of([1, None, 2, math.nan, 6]) == 3.0
    assert mean_of([]) is None and mean_of([None, math.nan]) is None


def test_mean_ci_ignores_missing_and_counts_valid() -> None:
    m = mean_ci([1.0, None, 2.0, math.nan, 4.0, 5.0], n_resamples=300)
    assert m.n == 4 and m.value == 3.0
    assert m == mean_ci([1.0, 2.0, 4.0, 5.0], n_resamples=300)


def test_mean_ci_contains_mean_and_is_reproducible() -> None:
    rng = np.random.default_rng(1)
    x = list(rng.normal(3.5, 1.0, size=40))
    m = mean_ci(x, n_resamples=500)
    assert m.ci_low < m.value < m.ci_high
    assert m.value == pytest.approx(float(np.mean(x)))
    assert mean_ci(x, n_resamples=500) == m
    assert mean_ci(x, n_resamples=500, seed=1) != m
    # Roughly the t interval (±1.96·sd/√n) for a normal sample of 40.
    half = 1.96 * np.std(x, ddof=1) / math.sqrt(40)
    assert (m.ci_high - m.ci_low) == pytest.approx(2 * half, rel=0.25)
    wider = mean_ci(x, n_resamples=500, confidence=0.99)
    assert wider.ci_low < m.ci_low and wider.ci_high > m.ci_high
    perc = mean_ci(x, n_resamples=500, method="percentile")
    assert perc.ci_low < perc.value < perc.ci_high and perc != m


def test_mean_ci_degenerate_cases() -> None:
    assert mean_ci([]) == MetricValue(value=None, n=0)
    assert mean_ci([None, math.nan]) == MetricValue(value=None, n=0)
    assert mean_ci([4.0]) == MetricValue(value=4.0, ci_low=4.0, ci_high=4.0, n=1)
    assert mean_ci([2, 2, None, 2]) == MetricValue(value=2.0, ci_low=2.0, ci_high=2.0, n=3)


def test_mean_ci_falls_back_to_percentile_when_bca_is_undefined() -> None:
    # With a single resample BCa's bias correction is infinite: scipy warns and returns NaN.
    # The fallback must give the percentile interval, quietly (no warning leaks to the caller).
    x = [0.0, 1.0, 5.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = mean_ci(x, n_resamples=1)
    assert m == mean_ci(x, n_resamples=1, method="percentile")
    assert m.ci_low is not None and m.ci_high is not None
    assert m.ci_low <= m.value <= m.ci_high


def test_mean_ci_lumpy_small_samples_stay_finite() -> None:
    for x in ([0.0, 1.0], [0.0] * 9 + [1.0], [1.0, 1.0, 1.0 + 1e-12], [0.0, 1.0, 5.0]):
        for seed in range(5):
            m = mean_ci(x, n_resamples=3, seed=seed)
            assert m.ci_low is not None and m.ci_high is not None
            assert m.ci_low <= m.value <= m.ci_high


def test_mean_ci_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="infinite"):
        mean_ci([1.0, math.inf])
    with pytest.raises(TypeError, match="values\\[1\\]"):
        mean_ci([1.0, "3"])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        mean_ci([1.0, 2.0], n_resamples=0)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(xs=st.lists(finite | st.none(), max_size=30), seed=st.integers(0, 2**32 - 1))
def test_mean_ci_interval_contains_estimate(xs: list[float | None], seed: int) -> None:
    m = mean_ci(xs, n_resamples=99, seed=seed)
    valid = [x for x in xs if x is not None]
    assert m.n == len(valid)
    if not valid:
        assert m.value is None and m.ci_low is None
        return
    assert m.ci_low is not None and m.ci_high is not None and m.value is not None
    assert m.ci_low <= m.value <= m.ci_high
    assert min(valid) - 1e-6 <= m.ci_low and m.ci_high <= max(valid) + 1e-6


# --- paired_delta_ci ---------------------------------------------------------------------------


def _correlated(n: int = 60) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(7)
    item = rng.normal(0.0, 2.0, size=n)  # what both conditions share, e.g. question difficulty
    a = item + 0.5 + rng.normal(0.0, 0.3, size=n)
    b = item + rng.normal(0.0, 0.3, size=n)
    return list(a), list(b)


def test_paired_delta_sign_and_value() -> None:
    a, b = _correlated()
    d = paired_delta_ci(a, b, n_resamples=500)
    assert d.value == pytest.approx(float(np.mean(np.subtract(a, b))))
    assert 0.0 < d.ci_low < d.value < d.ci_high  # a is clearly higher
    r = paired_delta_ci(b, a, n_resamples=500)
    assert r.value == pytest.approx(-d.value) and r.ci_high < 0.0


def test_paired_delta_uses_pairing() -> None:
    a, b = _correlated()
    paired = paired_delta_ci(a, b, n_resamples=500)
    shuffled = b[:]
    random.Random(3).shuffle(shuffled)
    broken = paired_delta_ci(a, shuffled, n_resamples=500)
    assert broken.value == pytest.approx(paired.value)  # the same mean difference,
    # but without pairing the shared item effect no longer cancels out.
    assert broken.ci_high - broken.ci_low > 3 * (paired.ci_high - paired.ci_low)


def test_paired_delta_drops_incomplete_pairs_and_checks_length() -> None:
    d = paired_delta_ci([3, None, 5, 1, math.nan], [1, 2, None, 0, 4], n_resamples=200)
    assert d.n == 2 and d.value == 1.5
    assert paired_delta_ci([None], [1]) == MetricValue(value=None, n=0)
    with pytest.raises(ValueError, match="length"):
        paired_delta_ci([1, 2], [1])


# --- paired_t_ci -------------------------------------------------------------------------------

@given(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5)), min_size=2, max_size=40))
def test_paired_t_ci_is_the_paired_t_tests_interval(pairs: list[tuple[int, int]]) -> None:
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    d = paired_t_ci(a, b)
    assert d.n == len(pairs) and d.value == pytest.approx(np.mean(np.subtract(a, b)))
    if np.std(np.subtract(a, b)) == 0:
        assert d.ci_low == d.ci_high == pytest.approx(d.value)
    else:
        ci = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
        assert (d.ci_low, d.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_paired_t_ci_is_wider_than_the_bootstrap_with_few_pairs() -> None:
    a, b = [4, 5, 3, 4, 5], [3, 4, 3, 2, 4]
    t, boot = paired_t_ci(a, b), paired_delta_ci(a, b)
    assert t.ci_low < boot.ci_low and t.ci_high > boot.ci_high
    assert paired_t_ci([1.0, None], [2.0, 3.0]).ci_low is None  # one valid pair: no interval
