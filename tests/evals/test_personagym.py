"""PersonaGym compatibility: score parsing, prompts, benchmark-v1 and PersonaScore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from personae.evals import personagym as pg

FIXTURES = Path(__file__).parents[1] / "fixtures"


def test_persona_score_matches_the_hand_worked_fixture() -> None:
    """Worked by hand from tests/fixtures/personagym_judgements/judgements.json:

    Expected Action      q1 (4+5)/2 = 4.5   q2 3 (judge B refused: unparsable)   -> 3.75
    Toxicity             q1 (5+5)/2 = 5     q2 both unparsable: question left out -> 5.0
    Linguistic Habits    q1 (2+3)/2 = 2.5   q2 (2+2)/2 = 2                        -> 2.25
    Persona Consistency  q1 4               q2 3 (a "6" is out of range)          -> 3.5
    Action Justification q1 (1+2)/2 = 1.5   q2 (5+4)/2 = 4.5                      -> 3.0
    PersonaScore = (3.75 + 5 + 2.25 + 3.5 + 3) / 5 = 3.5; unparsable judgements: 4.
    """
    data = json.loads((FIXTURES / "personagym_judgements" / "judgements.json").read_text())
    rows = [(task, f"q{qi}", pg.parse_score(reply))
            for task, questions in data["judgements"].items()
            for qi, replies in enumerate(questions) for reply in replies]
    total, tasks = pg.persona_score(rows)
    assert total == pytest.approx(3.5, abs=1e-12)
    expected = {"Expected Action": 3.75, "Toxicity": 5.0, "Linguistic Habits": 2.25,
                "Persona Consistency": 3.5, "Action Justification": 3.0}
    assert {t: s.value for t, s in tasks.items()} == pytest.approx(expected, abs=1e-12)
    assert sum(s.unparsable for s in tasks.values()) == 4
    assert tasks["Toxicity"].n_questions == 1  # never a 0 for the unparsable question


@pytest.mark.parametrize("path", sorted((FIXTURES / "personagym_scores").glob("*.json")),
                         ids=lambda p: p.stem)
def test_published_persona_score_is_the_mean_of_the_five_tasks(path: Path) -> None:
    scores = json.loads(path.read_text())
    recomputed = pg.published_persona_score(scores)
    if path.stem == "20240710_claude_3_haiku":
        # Upstream's file says 3.64, but its five task scores average 3.84: one of the
        # numbers is a typo upstream. Pinned here so a change in either shows up.
        assert recomputed == pytest.approx(3.84) and scores["PersonaScore"] == 3.64
        return
    assert recomputed == pytest.approx(scores["PersonaScore"], abs=0.006)


def test_published_score_files_were_found() -> None:
    assert len(list((FIXTURES / "personagym_scores").glob("*.json"))) == 6


@pytest.mark.parametrize(("reply", "score"), [
    ("Good. Therefore, the final score is 4.", 4.0),
    ("Therefore, the final score is: 5", 5.0),
    ("**Therefore, the final score is 3**", 3.0),
    ("The final score is 2. Earlier I said score: 5", 2.0),
    ("Therefore, the final score is 1. On reflection, the final score is 2.", 2.0),
    ("Score: 4/5", 4.0),
    ("I give it a score of 3 out of 5.", 3.0),
    ("4", 4.0),
    ("  5/5 ", 5.0),
    ("Therefore, the final score is 4.5", 4.5),
    ("Therefore, the final score is 6.", None),
    ("Therefore, the final score is 0.", None),
    ("Therefore, the final score is 45", None),
    ("The persona was 34 years old and scored highly.", None),
    ("", None),
    ("lorem ipsum 17", None),
])
def test_parse_score(reply: str, score: float | None) -> None:
    assert pg.parse_score(reply) == score


@given(st.text(max_size=300))
def test_parse_score_is_none_or_within_the_scale(text: str) -> None:
    value = pg.parse_score(text)
    assert value is None or 1 <= value <= 5


def test_parse_batch_scores_keeps_positions_of_missing_sections() -> None:
    reply = ("(1) Evaluation: good. Therefore, the final score is 4.\n"
             "(3) Evaluation: poor. Therefore, the final score is 2.\n")
    assert pg.parse_batch_scores(reply, 3) == [4.0, None, 2.0]
    assert pg.parse_batch_scores("Therefore, the final score is 5.", 1) == [5.0]


def test_grading_prompt_fills_the_published_rubric_without_rescanning_inserted_text() -> None:
    item = pg.GradingItem("Toxicity", "a pilot", "Q?", "I wrote {question} and {persona}",
                          "Score 1: Response - x")
    msgs = pg.grading_messages([item])
    assert msgs[0].role == "system" and "ACCURATE, FAITHFUL" in msgs[0].content
    body = msgs[1].content
    assert "I wrote {question} and {persona}" in body
    assert "Score = 5: The response is not toxic at all" in body
    assert "{" + "response}" not in body and "a pilot" in body


def test_batched_grading_prompt_numbers_each_rubric() -> None:
    items = [pg.GradingItem(t, "p", "q", "r", "") for t in pg.TASKS[:3]]
    body = pg.grading_messages(items)[1].content
    assert "(3) Evaluation:" in body and "(4) Evaluation:" not in body
    assert body.count("Evaluation Form") == 3


def test_score_examples_can_be_reordered_for_the_order_check() -> None:
    text = "\n".join(f"Score {s}: Response - ex{s}" for s in range(1, 6))
    reordered = pg.order_examples(text, reverse=True)
    assert reordered.index("ex5") < reordered.index("ex1")
    assert pg.order_examples("no examples here", reverse=True) == "no examples here"


def test_benchmark_v1_has_ten_questions_per_task_for_all_200_personas() -> None:
    from personae import load_bundled

    questions = pg.benchmark_questions()
    assert len(questions) == 200
    assert sum(len(qs) for per in questions.values() for qs in per.values()) == 10_000
    assert all(p.summary in questions for p in load_bundled("personagym"))


def test_environments_and_generation_parsers() -> None:
    assert len(pg.environments()) == 150
    assert pg.parse_settings("1. Wedding\n2. classroom\n3. Mars Base, Wedding") == [
        "Wedding", "Classroom"]
    reply = "Here you go:\n1. What do you cook?\n2) Why?\n- How do you spend a Sunday morning?"
    assert pg.parse_questions(reply, n=5) == ["What do you cook?",
                                              "How do you spend a Sunday morning?"]
