"""When a conversation stops: its turn budget, an end signal, or a loop of repeated turns."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

REPEAT_RATIO = 0.9


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", "", text.lower())).strip()


def near_identical(a: str, b: str, *, ratio: float = REPEAT_RATIO) -> bool:
    """Whether two turns say the same thing, up to case, punctuation and a word or two.

    >>> near_identical("I fix cars, that is my life.", "I fix cars. That is my life!")
    True
    >>> near_identical("I fix cars.", "The harvest was late this year.")
    False
    """
    x, y = _norm(a), _norm(b)
    if not x or not y:
        return False
    return difflib.SequenceMatcher(None, x, y, autojunk=False).ratio() >= ratio


def is_repetition(text: str, previous: Sequence[str], *, ratio: float = REPEAT_RATIO) -> bool:
    """A new turn repeats the conversation when it is near-identical to the turn before it,
    or to the turn before that (the same speaker's last line in a two-party talk)."""
    return any(near_identical(text, p, ratio=ratio) for p in list(previous)[-2:])
