"""Atomic persona fidelity (ACC_atom / IC_atom / RC_atom) against upstream's golden numbers."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from personae.evals.atomic import (
    CODES,
    LEVELS,
    NO_TRAIT,
    REFUSAL,
    TRAIT_NAMES,
    UNPARSABLE,
    atom_judge_messages,
    atomic_fidelity,
    parse_atom_score,
    score_level,
    split_atoms,
)

ATOMIC = Path(__file__).parents[1] / "fixtures" / "atomic"
GOLDEN = sorted((ATOMIC / "atomic_scores").rglob("atomic_scores.txt"))


def _golden_id(path: Path) -> str:
    return "/".join(path.relative_to(ATOMIC / "atomic_scores").parts[:-1])


def test_golden_files_present() -> None:
    # Guards the parametrized test below against passing with nothing to check.
    assert len(GOLDEN) >= 2


@pytest.mark.parametrize("scores_path", GOLDEN, ids=_golden_id)
def test_reproduces_upstream_fidelity_scores(scores_path: Path) -> None:
    rel = scores_path.relative_to(ATOMIC / "atomic_scores")
    expected = json.loads(
        (ATOMIC / "fidelity_scores" / rel.parent / "fidelity_scores.json").read_text()
    )
    scores = ast.literal_eval(scores_path.read_text())
    target = rel.parent.name  # upstream's layout: model/task/trait/level/

    got = atomic_fidelity(scores, target)

    assert set(got) == set(expected) == {"mean", "acc_atom", "ic_atom", "rc_atom"}
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9, rel=0), key


# --- codes -------------------------------------------------------------------------------


def test_codes_values() -> None:
    assert (NO_TRAIT, REFUSAL, UNPARSABLE) == (9, 99, 999)
    assert CODES == {9, 99, 999}


def test_codes_are_excluded() -> None:
    plain = atomic_fidelity([[[4, 2, 5]], [[3, 1]]], "high")
    coded = atomic_fidelity([[[9, 4, 999, 2, 5, 99]], [[3, 9, 1], [99]]], "high")
    assert coded == plain


def test_all_codes_gives_none() -> None:
    assert atomic_fidelity([[[9, 99]], [[999]]], "low") == {
        "mean": None, "acc_atom": None, "ic_atom": None, "rc_atom": None,
    }
    assert atomic_fidelity([], "low")["mean"] is None


@pytest.mark.parametrize("bad", [0, 6, 7, 2.5, -1])
def test_unknown_score_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="atom score"):
        atomic_fidelity([[[3, bad]]], "high")


# --- hand-computed examples ----------------------------------------------------------------


@pytest.mark.parametrize(("target", "acc"), [("low", 0.4), ("neutral", 0.2), ("high", 0.4)])
def test_acc_hand_computed(target: str, acc: float) -> None:
    assert atomic_fidelity([[[1, 2, 3, 4, 5]]], target)["acc_atom"] == pytest.approx(acc)


@pytest.mark.parametrize(("atoms", "ic"), [([1, 5], 0.0), ([3, 3, 3], 1.0), ([2, 4], 0.5)])
def test_ic_hand_computed(atoms: list[int], ic: float) -> None:
    assert atomic_fidelity([[atoms]], "high")["ic_atom"] == pytest.approx(ic)


def test_ic_needs_two_valid_atoms() -> None:
    assert atomic_fidelity([[[4], [5, 9]]], "high")["ic_atom"] is None


def test_averaging_is_response_then_generation() -> None:
    # Generation 1: responses [5, 5] and [1] -> means 5 and 1 -> 3 (pooling would give 11/3).
    # Generation 2: one response [3] -> 3, no IC. Overall mean 3; ACC (0.5 + 0) / 2; IC from
    # generation 1 only.
    got = atomic_fidelity([[[5, 5], [1]], [[3]]], "high")
    assert got["mean"] == pytest.approx(3.0)
    assert got["acc_atom"] == pytest.approx(0.25)
    assert got["ic_atom"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("scores", "rc"),
    [
        ([[[1]], [[5]]], -1.0),  # W1 = 4
        ([[[3]], [[3]], [[3]]], 1.0),
        ([[[1, 2]], [[2, 3]]], 0.5),  # W1 = 1 -> 2 * 0.75 - 1
        ([[[1]], [[1]], [[5]]], -1 / 3),  # pairs 1, -1, -1
        ([[[1], [2]], [[3, 2]]], 0.5),  # a generation's questions are pooled
        ([[[1]], [[9]], [[1]]], 1.0),  # a generation without valid atoms forms no pair
    ],
)
def test_rc_hand_computed(scores: list[list[list[int]]], rc: float) -> None:
    assert atomic_fidelity(scores, "low")["rc_atom"] == pytest.approx(rc)


def test_rc_with_one_generation_is_none() -> None:
    got = atomic_fidelity([[[1, 5, 3], [2, 4]]], "low")
    assert got["rc_atom"] is None
    assert got["mean"] == pytest.approx(3.0)


# --- bins ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (1, "low"), (2, "low"), (2.33, "low"), (7 / 3, "neutral"), (3, "neutral"),
        (3.66, "neutral"), (11 / 3, "high"), (3.67, "high"), (4, "high"), (5, "high"),
    ],
)
def test_bin_edges(score: float, level: str) -> None:
    # Upstream's edges are 1 + 4/3 and 1 + 8/3; DESIGN.md's 2.33 / 3.67 are them rounded.
    assert score_level(score) == level


@pytest.mark.parametrize("score", [0.99, 5.01])
def test_bin_outside_scale(score: float) -> None:
    with pytest.raises(ValueError):
        score_level(score)


@pytest.mark.parametrize("target", ["medium", "HIGH", ""])
def test_invalid_target(target: str) -> None:
    with pytest.raises(ValueError, match=repr(target)):
        atomic_fidelity([[[3]]], target)


# --- judge reply parsing --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("4", 4),
        (" 5\n", 5),
        ("2.", 2),
        ("4) Moderately open-minded.", 4),
        ("Score: 2", 2),
        ("The answer is (3).", 3),
        ("I would rate this a 3 on a scale of 1-5.", 3),
        ("On a 1 to 5 scale: 4", 4),
        ("On a 5-point scale, 4.", 4),
        ("4/5", 4),
        ("Rating: 5 out of 5", 5),
        ("9) None of the above.", 9),
        ("None of the above.", 9),
        ("99", 99),
        ("999", 999),
        ("I'm sorry, but I can't rate the personality from this sentence.", 999),
        ("", 999),
        ("-", 999),
        ("7", 999),
        ("0", 999),
        ("3.5", 999),
        ("Moderately open-minded", 999),
    ],
)
def test_parse_atom_score(reply: str, score: int) -> None:
    assert parse_atom_score(reply) == score


@given(st.text())
def test_parse_atom_score_total(reply: str) -> None:
    assert parse_atom_score(reply) in {1, 2, 3, 4, 5, 9, 99, 999}


# --- atoms ----------------------------------------------------------------------------------


def test_split_atoms_abbreviation() -> None:
    assert split_atoms("Dr. Smith arrived. He sat.") == ["Dr. Smith arrived.", "He sat."]


def test_split_atoms_strips_and_drops_empty() -> None:
    assert split_atoms("") == []
    assert split_atoms("  \n\n ") == []
    assert split_atoms("I love it!\n\n  It costs 3.5 dollars.  Why not?") == [
        "I love it!", "It costs 3.5 dollars.", "Why not?",
    ]


# --- judge prompt ---------------------------------------------------------------------------


def test_trait_names() -> None:
    assert TRAIT_NAMES == {
        "O": "openness", "C": "conscientiousness", "E": "extraversion",
        "A": "agreeableness", "N": "neuroticism",
    }


def test_essay_prompt() -> None:
    [msg] = atom_judge_messages("O", "I love trying new food.")
    assert msg.role == "user"
    assert msg.content.startswith(
        'Rate the personality of the writer of the following essay: "I love trying new food."'
    )
    assert "5) Very open-minded. 9) None of the above." in msg.content
    assert "Question:" not in msg.content
    assert msg.content.endswith("Reply with a single number:")


def test_questionnaire_prompt() -> None:
    [msg] = atom_judge_messages("conscientiousness", "I plan ahead.", question="Do you plan?")
    assert msg.content.splitlines() == [
        "What would be the conscientiousness score for the following response to the question?",
        "Question: Do you plan?",
        "Response: I plan ahead.",
        (
            "Options: 1) Very careless. 2) Moderately careless. 3) Neither conscientious or "
            "careless. 4) Moderately conscientious. 5) Very conscientious. 9) None of the above."
        ),
        "Reply with a single number:",
    ]


def test_neuroticism_scale_runs_towards_neurotic() -> None:
    [msg] = atom_judge_messages("N", "I worry a lot.")
    assert "1) Very emotionally stable." in msg.content
    assert "5) Very neurotic." in msg.content


@pytest.mark.parametrize("trait", ["e", "E", "Extraversion", "extroversion", " E "])
def test_trait_spellings(trait: str) -> None:
    [msg] = atom_judge_messages(trait, "Hi.", question="Q?")
    assert "extraversion score" in msg.content


@pytest.mark.parametrize("trait", ["X", "honesty", ""])
def test_unknown_trait(trait: str) -> None:
    with pytest.raises(ValueError, match="trait"):
        atom_judge_messages(trait, "Hi.")


def test_untrusted_text_is_inserted_verbatim() -> None:
    atom = "I pay $trait and ${options} {atom_sentence} $$"
    [msg] = atom_judge_messages("A", atom, question="$atom?")
    assert f"Response: {atom}\n" in msg.content
    assert "Question: $atom?\n" in msg.content


# --- properties -----------------------------------------------------------------------------

_response = st.lists(st.integers(1, 5), max_size=6)
_scores = st.lists(st.lists(_response, max_size=4), max_size=4)


@given(_scores, st.sampled_from(LEVELS))
def test_ranges(scores: list[list[list[int]]], target: str) -> None:
    got = atomic_fidelity(scores, target)
    assert (got["mean"] is None) == (got["acc_atom"] is None)
    if got["mean"] is not None:
        assert 1 <= got["mean"] <= 5
        assert 0 <= got["acc_atom"] <= 1
    if got["ic_atom"] is not None:
        assert 0 <= got["ic_atom"] <= 1
    if got["rc_atom"] is not None:
        assert -1 - 1e-12 <= got["rc_atom"] <= 1 + 1e-12


@given(_scores)
def test_acc_over_levels_sums_to_one(scores: list[list[list[int]]]) -> None:
    accs = [atomic_fidelity(scores, level)["acc_atom"] for level in LEVELS]
    if accs[0] is not None:
        assert sum(accs) == pytest.approx(1.0)


@given(_scores, st.sampled_from(LEVELS), st.lists(st.sampled_from(sorted(CODES)), max_size=3))
def test_codes_do_not_change_anything(
    scores: list[list[list[int]]], target: str, codes: list[int]
) -> None:
    coded = [[[*codes, *response, *codes] for response in gen] for gen in scores]
    assert atomic_fidelity(coded, target) == atomic_fidelity(scores, target)
