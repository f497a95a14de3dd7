"""Internal consistency of a scale: Cronbach's alpha and McDonald's omega.

Both take a respondents × items matrix of keyed responses (reverse-keyed items already
mirrored). Rows with any missing value (NaN or None) are dropped: listwise deletion keeps
every statistic on the same respondents.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from personae.errors import InputError


def _matrix(matrix: Sequence[Sequence[float | None]] | np.ndarray) -> np.ndarray:
    try:
        m = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"reliability: matrix must be numbers (respondents × items): {exc}"
        ) from None
    if m.ndim != 2:
        raise InputError("reliability: matrix must be two-dimensional (respondents × items)")
    m = m[~np.isnan(m).any(axis=1)]
    if m.shape[1] < 2:
        raise InputError(f"reliability: need at least 2 items, got {m.shape[1]}")
    if m.shape[0] < 2:
        raise InputError(f"reliability: need at least 2 complete respondents, got {m.shape[0]}")
    return m


def cronbach_alpha(matrix: Sequence[Sequence[float | None]] | np.ndarray) -> float | None:
    """Cronbach's alpha, ``k/(k-1) · (1 - Σ var(item) / var(total))`` with sample variances.

    None when the total score does not vary (alpha is undefined).

    >>> round(cronbach_alpha([[1, 2, 2], [2, 3, 3], [3, 3, 4], [4, 5, 5]]), 4)
    0.9825
    """
    m = _matrix(matrix)
    k = m.shape[1]
    total_var = m.sum(axis=1).var(ddof=1)
    if total_var <= 0:
        return None
    return float(k / (k - 1) * (1 - m.var(axis=0, ddof=1).sum() / total_var))


def one_factor_loadings(cov: np.ndarray, *, max_iter: int = 5000, tol: float = 1e-12) -> np.ndarray:
    """Loadings of a one-factor model fitted by iterated principal axis factoring.

    Start from squared multiple correlations (scaled to the covariance), then repeat: put the
    communalities on the diagonal, take the first eigenvector × √eigenvalue as loadings, and
    set the communalities to the squared loadings, until they stop changing. Communalities are
    capped at the item variance (no Heywood cases). The sign is chosen so loadings sum ≥ 0.

    >>> cov = np.outer([1, 2, 3], [1, 2, 3]) + np.diag([1.0, 1.0, 1.0])
    >>> np.round(one_factor_loadings(cov), 6).tolist()
    [1.0, 2.0, 3.0]
    """
    cov = np.asarray(cov, dtype=float)
    var = np.diag(cov).copy()
    try:
        smc = var - 1.0 / np.diag(np.linalg.inv(cov))
    except np.linalg.LinAlgError:
        smc = var * 0.5
    h = np.clip(smc, 0.0, var)
    loadings = np.sqrt(h)
    for _ in range(max_iter):
        reduced = cov.copy()
        np.fill_diagonal(reduced, h)
        vals, vecs = np.linalg.eigh(reduced)
        loadings = vecs[:, -1] * np.sqrt(max(vals[-1], 0.0))
        new_h = np.minimum(loadings**2, var)
        if np.max(np.abs(new_h - h)) < tol:
            h = new_h
            break
        h = new_h
    return loadings if loadings.sum() >= 0 else -loadings


def mcdonald_omega(matrix: Sequence[Sequence[float | None]] | np.ndarray) -> float | None:
    """McDonald's omega total from a one-factor model of the item covariance matrix.

    ``ω = (Σλ)² / ((Σλ)² + Σψ)`` with loadings λ from `one_factor_loadings` (iterated
    principal axis) and uniquenesses ``ψ = var(item) − λ²``. For tau-equivalent items (equal
    loadings) omega equals alpha; when loadings differ, alpha underestimates and omega does not.
    None when no item varies.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> f = rng.normal(size=(500, 1))
    >>> x = f @ np.ones((1, 4)) + rng.normal(size=(500, 4))
    >>> round(mcdonald_omega(x), 2), round(cronbach_alpha(x), 2)
    (0.81, 0.81)
    """
    m = _matrix(matrix)
    cov = np.cov(m, rowvar=False)
    if np.all(np.diag(cov) <= 0):
        return None
    lam = one_factor_loadings(cov)
    common = lam.sum() ** 2
    unique = float(np.sum(np.diag(cov) - lam**2))
    return float(common / (common + unique))
