"""pearson_ci, the correlation of declared and measured trait levels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import pearsonr

from personae.stats import pearson_ci


@pytest.mark.parametrize("seed", range(5))
def test_r_and_p_match_scipy_and_the_interval_is_fisher_z(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 6, size=12).astype(float)  # tied levels, as persona sets have
    y = x + rng.normal(0, 1.0, x.size)
    c = pearson_ci(x.tolist(), y.tolist())
    ref = pearsonr(x, y)
    assert c.rho is not None
    assert c.rho == pytest.approx(ref.statistic, abs=1e-12)
    assert c.p == pytest.approx(ref.pvalue)
    half = 1.959963984540054 / math.sqrt(12 - 3)
    assert c.ci_low == pytest.approx(math.tanh(math.atanh(c.rho) - half))
    assert c.ci_high == pytest.approx(math.tanh(math.atanh(c.rho) + half))
    assert c.n == 12 and c.method.startswith("Pearson r, Fisher z")


def test_hand_computed_small_case() -> None:
    # x centred (-1.5, -.5, .5, 1.5), y = (1, 3, 2, 4) centred (-1.5, .5, -.5, 1.5):
    # Sxy = 2.25 - .25 - .25 + 2.25 = 4, Sxx = Syy = 5, r = 0.8.
    c = pearson_ci([1, 2, 3, 4], [1, 3, 2, 4], confidence=0.9)
    assert c.rho == pytest.approx(0.8)
    half = 1.6448536269514722  # z for 90%, se = 1/sqrt(4 - 3)
    assert c.ci_low == pytest.approx(math.tanh(math.atanh(0.8) - half))
    assert c.ci_high == pytest.approx(math.tanh(math.atanh(0.8) + half))


def test_perfect_fits_are_exactly_one_with_no_interval() -> None:
    up = pearson_ci([1.5, 2.0, 3.5, 4.0, 5.0], [1.5, 2.0, 3.5, 4.0, 5.0])
    down = pearson_ci([1, 2, 3, 4], [0.3, 0.2, 0.1, 0.0])  # float noise off -1
    assert (up.rho, up.ci_low, up.ci_high, up.p) == (1.0, None, None, 0.0)
    assert down.rho == -1.0 and down.ci_low is None


@pytest.mark.parametrize(("x", "y", "n"), [
    ([], [], 0),
    ([1, 2], [1, 2], 2),                   # two points always lie on a line
    ([3, 3, 3, 3], [1, 2, 3, 4], 4),       # no variation in x
    ([1, 2, 3, 4], [2, 2, 2, 2], 4),       # no variation in y
    ([1, 2, 3, None], [1, 2, None, 4], 2),  # missing on either side drops the pair
])
def test_undefined_r_is_none(x: list[float | None], y: list[float | None], n: int) -> None:
    c = pearson_ci(x, y)
    assert c.rho is None and c.ci_low is None and c.n == n


def test_three_pairs_have_r_but_no_interval_and_bad_input_is_refused() -> None:
    c = pearson_ci([1, 2, 3], [1, 3, 2])
    assert c.rho == pytest.approx(0.5) and c.ci_low is None and c.n == 3
    assert pearson_ci([1, 2, 3, 4, float("nan")], [1, 2, 4, 3, 5]).n == 4
    with pytest.raises(ValueError, match="differ in length"):
        pearson_ci([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="confidence"):
        pearson_ci([1, 2, 3], [1, 2, 3], confidence=1.0)
