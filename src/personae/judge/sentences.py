"""Splitting text into sentences: the atoms of atomic fidelity, the facts of a persona that
has only a summary."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pysbd


@functools.cache
def _segmenter() -> pysbd.Segmenter:
    import pysbd  # building its rule tables costs time; only pay it when atoms are needed

    return pysbd.Segmenter(language="en", clean=False)


def split_atoms(text: str) -> list[str]:
    """Split a response into sentence atoms (pysbd), stripped, empty ones dropped.

    >>> split_atoms("Dr. Smith arrived. He sat.")
    ['Dr. Smith arrived.', 'He sat.']
    """
    # Upstream used nltk's punkt; pysbd needs no downloaded model and handles abbreviations.
    if not text.strip():
        return []
    return [s.strip() for s in _segmenter().segment(text) if s.strip()]
