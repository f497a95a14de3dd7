"""Cronbach's alpha and McDonald's omega against hand-computable cases."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personae.errors import InputError
from personae.instruments import cronbach_alpha, mcdonald_omega, one_factor_loadings


def test_alpha_textbook_example_by_hand() -> None:
    # 4 respondents × 3 items. Item variances (n−1): 5/3, 19/12, 5/3 → Σ = 59/12.
    # Totals 5, 8, 10, 14 → variance 57/4. α = 3/2 · (1 − (59/12)/(57/4)) = 56/57.
    m = [[1, 2, 2], [2, 3, 3], [3, 3, 4], [4, 5, 5]]
    expected = Fraction(3, 2) * (1 - Fraction(59, 12) / Fraction(57, 4))
    assert expected == Fraction(56, 57)
    assert cronbach_alpha(m) == pytest.approx(float(expected), rel=1e-12)


def test_alpha_drops_incomplete_rows() -> None:
    m = [[1, 2, 2], [2, 3, 3], [3, None, 4], [3, 3, 4], [4, 5, 5], [float("nan"), 1, 1]]
    assert cronbach_alpha(m) == pytest.approx(56 / 57)


def test_alpha_undefined_without_variation() -> None:
    assert cronbach_alpha([[3, 3], [3, 3], [3, 3]]) is None


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(1, 5), min_size=3, max_size=30).filter(lambda c: len(set(c)) > 1),
    st.integers(2, 8),
)
def test_alpha_of_identical_columns_is_one(column: list, k: int) -> None:
    m = np.repeat(np.array(column, dtype=float)[:, None], k, axis=1)
    assert cronbach_alpha(m) == pytest.approx(1.0)


def _with_exact_covariance(cov: np.ndarray, n: int = 200, seed: int = 1) -> np.ndarray:
    # Whiten random data, then colour it so its sample covariance is exactly `cov`.
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, cov.shape[0]))
    x -= x.mean(axis=0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T
    return x @ np.linalg.cholesky(cov).T + 3.0


def test_omega_equals_alpha_for_tau_equivalent_items() -> None:
    # Equal loadings λ = 0.8, unequal uniquenesses: α = ω = k²λ² / (k²λ² + Σψ) exactly.
    lam, psi = 0.8, np.array([0.3, 0.5, 0.4, 0.6])
    cov = np.full((4, 4), lam**2) + np.diag(psi)
    x = _with_exact_covariance(cov)
    expected = (4 * lam) ** 2 / ((4 * lam) ** 2 + psi.sum())
    assert cronbach_alpha(x) == pytest.approx(expected, rel=1e-9)
    assert mcdonald_omega(x) == pytest.approx(expected, rel=1e-6)


def test_omega_exceeds_alpha_for_congeneric_items() -> None:
    lam, psi = np.array([0.9, 0.7, 0.5, 0.3]), np.array([0.19, 0.51, 0.75, 0.91])
    cov = np.outer(lam, lam) + np.diag(psi)  # standardized: unit variances
    x = _with_exact_covariance(cov)
    expected = lam.sum() ** 2 / (lam.sum() ** 2 + psi.sum())  # 5.76 / 8.12
    assert mcdonald_omega(x) == pytest.approx(expected, rel=1e-6)
    assert np.abs(one_factor_loadings(np.cov(x, rowvar=False))) == pytest.approx(lam, rel=1e-5)
    assert cronbach_alpha(x) < mcdonald_omega(x)


@pytest.mark.parametrize(
    "bad",
    [[[1, 2, 3]], [[1], [2], [3]], [[1, "a"], [2, 3]], [1, 2, 3]],
    ids=["one-row", "one-item", "text", "flat"],
)
def test_bad_matrices_rejected(bad: list) -> None:
    with pytest.raises(InputError):
        cronbach_alpha(bad)
