"""An independent text scorer for a trait: does the text read like the trait's positive side?

The score of a text is its mean cosine similarity to the trait's positive descriptions minus
its mean similarity to the negative ones, in all-MiniLM-L6-v2 embedding space. It never looks
inside the steered model, so it can disagree with the activation projection: that is the point
of having it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from personae.models.embeddings import embed


def contrast_scores(texts: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Mean cosine to ``positive`` minus mean cosine to ``negative``, per row of ``texts``.

    All inputs are unit-length embeddings (one per row).

    >>> t = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> contrast_scores(t, np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])).tolist()
    [1.0, -1.0]
    """
    if len(positive) == 0 or len(negative) == 0:
        raise ValueError("a trait needs at least one positive and one negative description")
    return (texts @ positive.T).mean(axis=1) - (texts @ negative.T).mean(axis=1)


class TraitTextScorer:
    """Scores texts against a trait's positive and negative descriptions.

    Example (loads the embedding model, so not run here)::

        scorer = TraitTextScorer(["Be outgoing and talkative."], ["Be quiet and reserved."])
        scorer.score(["Hey everyone, let's party!", "I'd rather stay home alone."])
    """

    def __init__(self, positive: Sequence[str], negative: Sequence[str]) -> None:
        self._pos = embed(positive)
        self._neg = embed(negative)
        if len(self._pos) == 0 or len(self._neg) == 0:
            raise ValueError("a trait needs at least one positive and one negative description")

    def score(self, texts: Sequence[str]) -> np.ndarray:
        return contrast_scores(embed(texts), self._pos, self._neg)
