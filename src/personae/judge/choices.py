"""Reading a judge's choice among lettered options from its words."""

from __future__ import annotations

import re
import string


def parse_letter(text: str, n: int) -> int | None:
    """The letter a judge chose among the first ``n`` (0-based), or None.

    >>> parse_letter("Answer: C, because...", 4), parse_letter("none of them", 4)
    (2, None)
    """
    letters = string.ascii_uppercase[:n]
    found = re.findall(rf"\b([{letters}])\b", text.strip())
    return letters.index(found[0]) if found else None
