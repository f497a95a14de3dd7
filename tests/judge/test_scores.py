"""The one score parser: rubric replies (PersonaGym grading) and one-digit replies
(per-turn fidelity)."""

from __future__ import annotations

import pytest

from personae.evals import personagym
from personae.judge.scores import parse_score

REPLIES = ["Therefore, the final score is 4.", "Score: 3/5", "score of 2 out of 5", "5",
           "**4**", "Final score: 6", "I'd give it a 4", "4 - mostly in character",
           "Score: 3. Compared with the 5 others", "Rating 2, final score is 4", "", "3.5",
           "The final score is 4.5"]


@pytest.mark.parametrize("text", REPLIES)
def test_rubric_reading_is_personagyms(text: str) -> None:
    assert parse_score(text) == personagym.parse_score(text)


@pytest.mark.parametrize(("text", "score"), [
    ("4 - mostly in character", 4.0), ("Score: 2", 2.0), ("I'd give it a 5 overall", 5.0),
    ("3.5", None), ("5.", None), ("7", None), ("10", None), ("no digit", None), ("1 or 5", 1.0)])
def test_first_digit_reading(text: str, score: float | None) -> None:
    # "5." is read as the start of a decimal: unparsable, as the simulation always had it.
    assert parse_score(text, first_digit=True) == score
