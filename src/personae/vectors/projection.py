"""Projection of activations on a persona vector: per token, and the mean over a response
(numpy only)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from personae.errors import InputError


def project(activations: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Per-token projection of ``activations`` ``(n_tokens, hidden)`` on the unit vector
    along ``direction`` ``(hidden,)``.

    >>> project(np.array([[3.0, 4.0], [1.0, 0.0]]), np.array([2.0, 0.0])).tolist()
    [3.0, 1.0]
    """
    d = np.asarray(direction, dtype=np.float64)
    norm = float(np.linalg.norm(d))
    if norm == 0.0:
        raise InputError("cannot project on a zero vector")
    return np.asarray(activations, dtype=np.float64) @ (d / norm)


@dataclass(frozen=True)
class Projection:
    """Per-token projections of one response and their mean (NaN when it has no tokens)."""

    per_token: np.ndarray
    mean: float

    @classmethod
    def of(cls, activations: np.ndarray, direction: np.ndarray, start: int = 0,
           end: int | None = None) -> Projection:
        """Project ``activations[start:end]`` (the response tokens) on ``direction``.

        >>> Projection.of(np.array([[9.0], [1.0], [3.0]]), np.array([1.0]), start=1).mean
        2.0
        """
        values = project(activations[start:end], direction)
        return cls(values, float(values.mean()) if len(values) else math.nan)
