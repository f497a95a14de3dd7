from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from personae.stats import MetricValue, Slope, slope_ci


def test_perfect_line_gives_exact_slope_and_degenerate_interval() -> None:
    x = list(range(1, 11))
    s = slope_ci(x, [2.5 * t - 1 for t in x])
    assert s.value == pytest.approx(2.5, abs=1e-12)
    assert s.ci_low == s.ci_high == s.value
    assert (s.n, s.clusters, s.method, s.sign()) == (10, 1, "ols-t", "positive")


def test_t_interval_matches_linregress_stderr_times_t_quantile() -> None:
    rng = np.random.default_rng(3)
    x = np.arange(1.0, 21.0)
    y = 3.0 - 0.2 * x + rng.normal(0, 1.0, x.size)
    fit = stats.linregress(x, y)
    for confidence in (0.9, 0.95):
        half = stats.t.ppf(0.5 + confidence / 2, x.size - 2) * fit.stderr
        s = slope_ci(x.tolist(), y.tolist(), confidence=confidence)
        assert s.value == pytest.approx(fit.slope, rel=1e-12)
        assert s.ci_low == pytest.approx(fit.slope - half, rel=1e-12)
        assert s.ci_high == pytest.approx(fit.slope + half, rel=1e-12)
        assert s.method == "ols-t"


def test_one_cluster_id_everywhere_is_the_same_as_no_clusters() -> None:
    x, y = [1, 2, 3, 4, 5], [2.0, 2.5, 2.2, 3.9, 4.1]
    assert slope_ci(x, y, clusters=["c"] * 5) == slope_ci(x, y)


def _conversations(n_conv: int, turns: int, seed: int, level_sd: float = 0.5,
                   slope_sd: float = 0.08) -> tuple[list[int], list[float], list[int]]:
    # Each conversation has its own level and its own slope around -0.1, plus turn noise.
    rng = np.random.default_rng(seed)
    x: list[int] = []
    y: list[float] = []
    c: list[int] = []
    for conv in range(n_conv):
        level, slope = rng.normal(4.0, level_sd), rng.normal(-0.1, slope_sd)
        for t in range(1, turns + 1):
            x.append(t)
            y.append(level + slope * t + rng.normal(0, 0.3))
            c.append(conv)
    return x, y, c


def test_cluster_bootstrap_is_deterministic_and_covers_the_true_slope() -> None:
    x, y, c = _conversations(25, 10, seed=7)
    a = slope_ci(x, y, clusters=c, seed=11)
    assert a == slope_ci(x, y, clusters=c, seed=11)
    assert a != slope_ci(x, y, clusters=c, seed=12)
    assert (a.method, a.clusters, a.n) == ("cluster-bootstrap", 25, 250)
    assert a.value == pytest.approx(stats.linregress(x, y).slope, rel=1e-12)
    assert a.ci_low <= -0.1 <= a.ci_high
    assert a.sign() == "negative"


def test_cluster_bootstrap_is_wider_than_the_naive_t_interval_when_slopes_vary() -> None:
    # Treating 600 turns of 30 conversations as 600 independent points overstates precision
    # when the slope varies between conversations: that is why clusters are resampled.
    x, y, c = _conversations(30, 20, seed=2, level_sd=0.1, slope_sd=0.1)
    clustered = slope_ci(x, y, clusters=c)
    naive = slope_ci(x, y)
    assert clustered.value == pytest.approx(naive.value)
    assert clustered.ci_high - clustered.ci_low > 1.5 * (naive.ci_high - naive.ci_low)


def test_resamples_without_two_distinct_x_are_skipped() -> None:
    # Each conversation sits at one x: a resample drawing only one of them has no slope.
    x = [1, 1, 1, 2, 2, 2, 3, 3, 3]
    y = [1.0, 1.2, 0.8, 2.1, 1.9, 2.0, 3.3, 2.7, 3.0]
    s = slope_ci(x, y, clusters=[0, 0, 0, 1, 1, 1, 2, 2, 2], n_resamples=500)
    assert s.method == "cluster-bootstrap"
    assert s.ci_low is not None and math.isfinite(s.ci_low) and math.isfinite(s.ci_high)
    assert s.ci_low <= s.value <= s.ci_high


def test_constant_series_is_a_flat_zero_slope() -> None:
    s = slope_ci([1, 2, 3, 4, 5], [3.0] * 5)
    assert (s.value, s.ci_low, s.ci_high, s.sign()) == (0.0, 0.0, 0.0, "flat")
    b = slope_ci([1, 2, 3] * 3, [3.0] * 9, clusters=[0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert (b.value, b.ci_low, b.ci_high, b.sign()) == (0.0, 0.0, 0.0, "flat")


def test_step_down_is_negative() -> None:
    s = slope_ci([1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 1, 1, 0, 0, 0, 0])
    assert s.value == pytest.approx(-8 / 42)
    assert s.ci_high < 0
    assert s.sign() == "negative"


def test_noise_without_trend_is_flat() -> None:
    s = slope_ci([1, 2, 3, 4, 5, 6], [2.0, 3.0, 2.0, 3.0, 2.0, 3.0])
    assert s.ci_low < 0 < s.ci_high
    assert s.sign() == "flat"


def test_missing_pairs_are_dropped_and_counted_out() -> None:
    s = slope_ci([1, 2, 3, 4, 5], [1.0, None, 3.0, float("nan"), 5.0], clusters=list("aabbc"))
    assert (s.n, s.clusters) == (3, 3)  # "b" keeps one point, "a" one, "c" one
    assert s.value == pytest.approx(1.0)


def test_fewer_than_two_distinct_x_has_no_slope_and_two_points_no_interval() -> None:
    assert slope_ci([2, 2, 2], [1.0, 2.0, 3.0]).value is None
    assert slope_ci([], []).model_dump() == {
        "value": None, "ci_low": None, "ci_high": None, "n": 0, "clusters": 0, "method": "none"}
    two = slope_ci([1, 2, 3], [1.0, 3.0, None])
    assert (two.value, two.ci_low, two.n, two.method, two.sign()) == (
        pytest.approx(2.0), None, 2, "none", "unknown")


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        slope_ci([1, 2, 3], [1.0, 2.0])
    with pytest.raises(ValueError, match="differ in length"):
        slope_ci([1, 2, 3], [1.0, 2.0, 3.0], clusters=[0, 1])
    with pytest.raises(ValueError, match="confidence"):
        slope_ci([1, 2, 3], [1.0, 2.0, 3.0], confidence=1.5)
    with pytest.raises(TypeError):
        slope_ci([1, 2, 3], [1.0, "2", 3.0])  # type: ignore[list-item]


def test_sign_rules_and_as_dict_reads_like_a_metric_value() -> None:
    def mk(v: float | None, lo: float | None, hi: float | None) -> Slope:
        return Slope(value=v, ci_low=lo, ci_high=hi, n=5, clusters=2, method="cluster-bootstrap")

    assert mk(-0.2, -0.3, -0.1).sign() == "negative"
    assert mk(0.2, 0.1, 0.3).sign() == "positive"
    assert mk(0.2, -0.1, 0.3).sign() == "flat"
    assert mk(-0.2, -0.3, 0.0).sign() == "flat"  # 0 is inside the interval
    assert mk(0.0, 0.0, 0.0).sign() == "flat"
    assert mk(0.5, 0.5, 0.5).sign() == "positive"
    assert mk(None, None, None).sign() == "unknown"
    d = mk(-0.2, -0.3, -0.1).as_dict()
    assert d == {"value": -0.2, "ci_low": -0.3, "ci_high": -0.1, "n": 5, "clusters": 2,
                 "method": "cluster-bootstrap", "sign": "negative"}
    MetricValue(**{k: d[k] for k in ("value", "ci_low", "ci_high", "n")})
    with pytest.raises(ValueError):
        mk(0.1, 0.3, 0.2)
    with pytest.raises(ValueError):
        mk(0.1, None, 0.2)
