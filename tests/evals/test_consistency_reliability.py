"""Consistency (NLI labels, C-score) and the judge-reliability checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personae import Persona
from personae.errors import InputError
from personae.evals import reliability as rl
from personae.evals.config import EvalConfig, build_config
from personae.evals.probes import load_question_file
from personae.judge import nli as cs
from personae.judge.choices import parse_letter


@pytest.mark.parametrize(("text", "label"), [
    ("entailment", "entailment"), ("Contradiction.", "contradiction"),
    ("It is neutral", "neutral"), ("The premise entails the hypothesis.", "entailment"),
    ("neutral or contradiction", None), ("yes", None), ("", None),
])
def test_parse_label(text: str, label: str | None) -> None:
    assert cs.parse_label(text) == label


def test_c_score_sums_labels_and_skips_unparsable() -> None:
    assert cs.c_score(["entailment", "entailment", "contradiction"]) == 1.0
    assert cs.c_score([None, None]) is None
    assert cs.contradicted([("a", "contradiction"), ("b", "neutral"), ("a", "contradiction")]) \
        == ["a"]


def test_persona_facts_fall_back_to_summary_sentences() -> None:
    assert cs.persona_facts(Persona(summary="A pilot. She flies.", facts=["I fly."])) == ["I fly."]
    assert cs.persona_facts(Persona(summary="A pilot from Oslo. She flies at night.")) == [
        "A pilot from Oslo.", "She flies at night."]


def test_alpha_check_passes_agreeing_judges_and_fails_disagreeing_ones() -> None:
    a = [1, 2, 3, 4, 5, 1, 2, 3, 4, 5]
    good = rl.alpha_check("x", "X", [a, a], missing_note="-")
    assert good.passed is True and good.value.value == pytest.approx(1.0)
    bad = rl.alpha_check("x", "X", [a, a[::-1]], missing_note="-")
    assert bad.passed is False and bad.value.value < 0
    assert rl.alpha_check("x", "X", [a], missing_note="one judge").passed is None


def test_role_check_needs_accuracy_above_chance() -> None:
    assert rl.role_check([True] * 12, 4).passed is True
    chance_level = rl.role_check([True, False, False, False] * 3, 4)
    assert chance_level.passed is False and chance_level.chance == 0.25
    assert rl.role_check([], 4).passed is None


def test_verdict_names_failed_checks_and_never_passes_unmeasured() -> None:
    fail = rl.Check("role_identification", "Role identification: which", None, False, "")
    ok = rl.Check("test_retest_alpha", "Test–retest: x", None, True, "")
    unmeasured = rl.Check("inter_judge_alpha", "Agreement", None, None, "")
    reliable, text = rl.verdict([fail, ok, unmeasured])
    assert not reliable and "role identification" in text and "1 of 2" in text
    assert rl.verdict([unmeasured])[0] is False
    assert rl.verdict([ok, unmeasured])[0] is True


def test_role_options_include_the_author_once_and_are_seeded() -> None:
    population = [f"p{i}" for i in range(10)]
    offered, answer = rl.role_options(3, population, k=4, seed="s")
    assert len(offered) == 4 and offered[answer] == 3 and len(set(offered)) == 4
    assert rl.role_options(3, population, k=4, seed="s") == (offered, answer)
    assert parse_letter("I think it is C.", 4) == 2 and parse_letter("none", 4) is None


@pytest.mark.parametrize(("content", "needle"), [
    ("[1, 2]", "expected {task: [question, ...]}"),
    ('{"Toxicity": "just one string"}', "Toxicity"),
    ('{"Cooking": ["Q?"]}', "unknown task 'Cooking'"),
    ('{"Toxicity": []}', "no questions for 'Toxicity'"),
    ("{not json", ":1: not valid JSON"),
])
def test_question_file_of_the_wrong_shape_is_rejected(tmp_path: Path, content: str,
                                                      needle: str) -> None:
    path = tmp_path / "q.json"
    path.write_text(content)
    with pytest.raises(InputError, match="q.json") as info:
        load_question_file(path)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_question_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "q.json"
    path.write_text(json.dumps({"Toxicity": ["Q1?", " ", "Q2?"]}))
    assert load_question_file(path) == {"Toxicity": ["Q1?", "Q2?"]}


def test_unknown_suite_task_and_preset_are_input_errors() -> None:
    with pytest.raises(InputError, match="unknown suite 'vibes'"):
        build_config(None, suites=["fidelity", "vibes"])
    with pytest.raises(InputError, match="unknown task 'Cooking'"):
        build_config(None, tasks=["Cooking"])
    with pytest.raises(InputError, match="unknown preset 'huge'"):
        build_config("huge")
    assert build_config("quick", limit=3).limit == 3
    assert EvalConfig().digest() == EvalConfig(concurrency=9).digest()


def test_parse_rate_check_fails_a_judge_that_rarely_scores() -> None:
    assert rl.parse_check(10, 30).passed is False
    ok = rl.parse_check(29, 30)
    assert ok.passed is True and ok.value.n == 30 and "1 of 30 unparsable" in ok.note
    assert rl.parse_check(0, 0).passed is None
