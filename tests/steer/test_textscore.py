"""The embedding text scorer (loads the packaged all-MiniLM-L6-v2)."""

from __future__ import annotations

import numpy as np
import pytest

from personae.models.embeddings import embed
from personae.steer.textscore import TraitTextScorer, contrast_scores


def test_contrast_is_mean_positive_minus_mean_negative_cosine() -> None:
    texts = np.array([[1.0, 0.0], [0.6, 0.8]])
    pos = np.array([[1.0, 0.0], [0.0, 1.0]])
    neg = np.array([[0.0, -1.0]])
    np.testing.assert_allclose(contrast_scores(texts, pos, neg), [0.5 - 0.0, 0.7 + 0.8])
    with pytest.raises(ValueError, match="at least one"):
        contrast_scores(texts, pos, np.zeros((0, 2)))


@pytest.mark.model
def test_scorer_ranks_trait_text_above_its_opposite() -> None:
    e = embed(["I love parties.", "I love parties.", "Taxes are due in April."])
    assert e.shape == (3, 384)
    assert float(e[0] @ e[1]) == pytest.approx(1.0, abs=1e-5)
    assert float(e[0] @ e[2]) < 0.5
    scorer = TraitTextScorer(["Respond in an outgoing, energetic, talkative way."],
                             ["Respond in a quiet, reserved, withdrawn way."])
    s = scorer.score(["Hey everyone! Let's go out, meet new people and dance all night!",
                      "I'd rather stay home alone and keep to myself."])
    assert s[0] > s[1]
