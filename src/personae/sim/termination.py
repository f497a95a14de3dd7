"""When a conversation stops: its turn budget, an end signal, or a loop of repeated turns."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Literal

StopReason = Literal["max_turns", "end_signal", "repetition", "script_end"]
REPEAT_RATIO = 0.9


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", "", text.lower()).split()


def near_identical(a: str, b: str, *, ratio: float = REPEAT_RATIO) -> bool:
    """Whether two turns say the same thing, up to case, punctuation and a word or two.

    Compared word by word: matching characters costs time quadratic in the length (18 ms for
    two 64-word turns, more than the rest of a turn's work), words about a tenth of that.

    >>> near_identical("I fix cars, that is my life.", "I fix cars. That is my life!")
    True
    >>> near_identical("I fix cars.", "The harvest was late this year.")
    False
    """
    x, y = _words(a), _words(b)
    if not x or not y:
        return False
    matcher = difflib.SequenceMatcher(None, x, y, autojunk=False)
    return matcher.real_quick_ratio() >= ratio and matcher.ratio() >= ratio


def is_repetition(text: str, earlier: Iterable[str | None], *,
                  ratio: float = REPEAT_RATIO) -> bool:
    """A new turn loops when it is near-identical to one of ``earlier``: the turn just before
    it (echoing the partner) or the speaker's own last turn (saying the same thing again,
    however many others spoke in between)."""
    return any(e is not None and near_identical(text, e, ratio=ratio) for e in earlier)


def stop_reason(*, end_signal: bool, repeated: bool, n_turns: int,
                max_turns: int) -> StopReason | None:
    """Why a conversation stops after its latest turn, or None when it goes on.

    >>> stop_reason(end_signal=False, repeated=False, n_turns=8, max_turns=8)
    'max_turns'
    """
    if end_signal:
        return "end_signal"
    if repeated:
        return "repetition"
    if n_turns >= max_turns:
        return "max_turns"
    return None
