import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from personae.stats import spearman_ci


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.floats(-10, 10)), min_size=3, max_size=30))
def test_rho_matches_scipy_with_ties(pairs: list[tuple[int, float]]) -> None:
    x, y = zip(*pairs, strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant input; we check the None
        m = spearman_ci(x, y)
        expected = spearmanr(x, y).statistic
    if np.isnan(expected):
        assert m.rho is None
    else:
        assert m.rho == pytest.approx(expected, abs=1e-12)
        assert m.n == len(pairs)
        if m.n >= 4 and abs(m.rho) < 1:
            assert m.ci_low <= m.rho <= m.ci_high
            assert -1.0 <= m.ci_low and m.ci_high <= 1.0
        else:  # Fisher z needs n >= 4 and |rho| < 1: no interval rather than a made-up one
            assert m.ci_low is None


def test_interval_narrows_with_more_data_and_excludes_zero_for_a_strong_trend() -> None:
    rng = np.random.default_rng(1)
    x = np.repeat(np.arange(1, 6), 20)
    y = x + rng.normal(0, 1.0, x.size)
    big = spearman_ci(x, y)
    small = spearman_ci(x[::10], y[::10])
    boot = spearman_ci(x, y, method="bootstrap", n_resamples=500)
    assert boot.ci_low > 0.5
    assert big.ci_low > 0.5
    assert (big.ci_high - big.ci_low) < (small.ci_high - small.ci_low)


def test_no_association_gives_an_interval_around_zero() -> None:
    rng = np.random.default_rng(2)
    m = spearman_ci(rng.normal(size=200), rng.normal(size=200))
    assert m.ci_low < 0 < m.ci_high


def test_missing_values_are_dropped_pairwise_and_bad_shapes_rejected() -> None:
    m = spearman_ci([1, 2, 3, 4, 5], [1, 2, 3, float("nan"), None])
    assert m.n == 3 and m.ci_low is None
    with pytest.raises(ValueError, match="differ in length"):
        spearman_ci([1, 2, 3], [1, 2])
