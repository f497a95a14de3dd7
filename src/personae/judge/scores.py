"""Reading a 1–5 score from a judge's words (pure: no model, no I/O)."""

from __future__ import annotations

import re

_FINAL_RE = re.compile(
    r"final\s+score\s*(?:is|of|=|:)?\s*(?:is\s*)?[:\s]*[*\"'(\[]*\s*([1-5](?:\.\d+)?)(?!\d)",
    re.IGNORECASE)
_SCORE_RE = re.compile(
    r"\bscore\s*(?:is|of|=|:)\s*[*\"'(\[]*\s*([1-5](?:\.\d+)?)(?:\s*/\s*5|\s+out\s+of\s+5)?(?!\d)",
    re.IGNORECASE)
_BARE_RE = re.compile(r"^\s*[*\"'(\[]*([1-5])(?:\s*/\s*5)?[*\"')\].]*\s*$")
_DIGIT_RE = re.compile(r"(?<![\d.])([1-5])(?![\d.])")


def parse_score(text: str, *, first_digit: bool = False) -> float | None:
    """A 1–5 score from a judge's reply, or None when there is none to find.

    A rubric reply (the default) is read leniently in the ways judges actually vary and
    strictly about anything else: the last "final score is N" wins; failing that, the last
    "score: N" / "score of N/5"; failing that, a reply that is only a number. Anything
    outside 1–5 is unparsable, never clipped.

    ``first_digit`` is for a short reply to "answer with one digit": the first digit 1–5
    standing on its own counts, whatever words follow it ("4 - mostly in character"),
    where the rubric reading would find no score at all.

    >>> parse_score("...so it fits well. Therefore, the final score is 4.")
    4.0
    >>> parse_score("Score: 3/5")
    3.0
    >>> parse_score("I cannot rate this.") is None
    True
    >>> parse_score("4 - mostly in character"), parse_score("4 - mostly", first_digit=True)
    (None, 4.0)
    """
    if first_digit:
        found = _DIGIT_RE.search(text)
        return float(found.group(1)) if found else None
    for pattern in (_FINAL_RE, _SCORE_RE):
        matches = pattern.findall(text)
        if matches:
            value = float(matches[-1])
            return value if 1 <= value <= 5 else None
    bare = _BARE_RE.match(text)
    return float(bare.group(1)) if bare else None
