"""Scoring against five-factor-e's published results, the derived keys, and properties."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personae.instruments import (
    acquiescence_index,
    ipip_neo_norm_scores,
    load_answers,
    load_questionnaire,
    refusal_rate,
    reverse_key,
    score_answers,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "instruments"
FFE = json.loads((FIXTURES / "five_factor_e.json").read_text())
KEYS = json.loads((FIXTURES / "derived_scoring_keys.json").read_text())
DOMAINS = ["N", "E", "O", "A", "C"]


@pytest.mark.parametrize("name,n", [("ipip-120", 120), ("ipip-300", 300)])
def test_reverse_keys_match_derived_scoring_keys(name: str, n: int) -> None:
    q = load_questionnaire(name)
    keys = KEYS[f"ipip_neo_{n}"]
    assert len(q.items) == keys["n_items"] == n
    assert sorted(int(i.id) for i in q.items if i.reversed) == sorted(keys["reverse_keyed"])


@pytest.mark.parametrize("name", ["ipip-120", "ipip-300"])
def test_domain_and_facet_follow_item_number(name: str) -> None:
    for item in load_questionnaire(name).items:
        i = int(item.id)
        assert item.scale == DOMAINS[(i - 1) % 5]
        assert item.facet == f"{item.scale}{((i - 1) % 30) // 5 + 1}"


def test_bank_sizes_per_scale() -> None:
    for name, per_facet in (("ipip-120", 4), ("ipip-300", 10)):
        s = score_answers(load_questionnaire(name), {})
        assert {v.n_items for k, v in s.scales.items() if len(k) == 2} == {per_facet}
        assert {v.n_items for k, v in s.scales.items() if len(k) == 1} == {6 * per_facet}


# Numbers upstream's own test suite asserts (test/test_ipipneo.py), independent of the fixture
# generation: answers-test-1 scored for a 40-year-old man and a 65-year-old woman.
UPSTREAM_ASSERTED = [
    (
        "answers-test-1",
        "M",
        40,
        {
            "O": 13.262383714475419,
            "C": 18.62283542366208,
            "E": 34.10779114957646,
            "A": 1.9889215690788262,
            "N": 58.6632925696303,
        },
    ),
    (
        "answers-test-1",
        "F",
        30,
        {
            "O": 8.876064362586419,
            "C": 13.877369975064141,
            "E": 29.240137885780882,
            "A": 1,
            "N": 47.49034742252866,
        },
    ),
    (
        "answers-test-1",
        "F",
        65,
        {"O": 24.29091080263288, "C": 1, "E": 32.92660962191414, "A": 1, "N": 67.59105722337824},
    ),
]


@pytest.mark.parametrize("answers,sex,age,expected", UPSTREAM_ASSERTED)
def test_upstream_asserted_domain_percentiles(
    answers: str, sex: str, age: int, expected: dict
) -> None:
    q = load_questionnaire("ipip-120")
    got = ipip_neo_norm_scores(score_answers(q, FFE["answers"][answers]), sex=sex, age=age)
    assert {k: got["percentile"][k] for k in DOMAINS} == pytest.approx(
        expected, rel=1e-12, abs=1e-12
    )


@pytest.mark.parametrize("case", FFE["cases"], ids=lambda c: f"{c['answers']}-{c['sex']}{c['age']}")
def test_five_factor_e_published_scores(case: dict) -> None:
    q = load_questionnaire(case["instrument"])
    got = ipip_neo_norm_scores(
        score_answers(q, FFE["answers"][case["answers"]]), sex=case["sex"], age=case["age"]
    )
    pct = got["percentile"]
    assert {k: pct[k] for k in DOMAINS} == pytest.approx(
        case["domain_percentile"], rel=1e-12, abs=1e-12
    )
    assert {k: v for k, v in pct.items() if len(k) == 2} == pytest.approx(
        case["facet_percentile"], rel=1e-12, abs=1e-12
    )


def test_all_eight_mock_answer_files_are_covered() -> None:
    names = {c["answers"] for c in FFE["cases"]}
    assert {f"answers-test-{i}" for i in range(1, 9)} <= names


def test_domain_means_are_raw_sums_over_items() -> None:
    q = load_questionnaire("ipip-120")
    answers = FFE["answers"]["answers-test-1"]
    s = score_answers(q, answers)
    for d in DOMAINS:
        manual = [
            (6 - answers[i.id]) if i.reversed else answers[i.id] for i in q.items if i.scale == d
        ]
        assert s.scales[d].mean == pytest.approx(sum(manual) / 24)
        assert s.scales[d].sum == sum(manual)
        assert s.scales[d].n_answered == 24


def test_load_answers_reads_five_factor_e_format(tmp_path: Path) -> None:
    q = load_questionnaire("ipip-120")
    ans = FFE["answers"]["answers-test-2"]
    p = tmp_path / "a.json"
    p.write_text(
        json.dumps({"answers": [{"id_question": int(k), "id_select": v} for k, v in ans.items()]})
    )
    assert load_answers(p, q) == {k: float(v) for k, v in ans.items()}


def test_missing_and_refused_items_are_excluded_and_counted() -> None:
    q = load_questionnaire("ipip-120")
    answers = {i: 4 for i in range(1, 121)}
    answers[1] = None  # refused
    del answers[6]  # never answered
    s = score_answers(q, answers)
    assert s.n_refused == 2 and s.n_answered == 118
    assert s.scales["N"].n_answered == 22 and s.scales["N"].n_missing == 2
    assert s.scales["N1"].n_answered == 3
    n_items = [i for i in q.items if i.scale == "N" and i.id not in ("1", "6")]
    assert s.scales["N"].mean == pytest.approx(
        sum(2 if i.reversed else 4 for i in n_items) / len(n_items)
    )
    rate = refusal_rate(q, answers)
    assert rate.value == pytest.approx(2 / 120) and rate.n == 120


def test_acquiescence() -> None:
    q = load_questionnaire("ipip-120")
    assert acquiescence_index(q, {i: 5 for i in range(1, 121)}) == 2.0
    assert acquiescence_index(q, {i: 1 for i in range(1, 121)}) == -2.0
    # A perfectly consistent respondent: agrees with forward items, disagrees with reversed.
    consistent = {int(i.id): (1 if i.reversed else 5) for i in q.items}
    assert acquiescence_index(q, consistent) == 0.0


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 5))
def test_reverse_keying_twice_is_identity(x: int) -> None:
    assert reverse_key(reverse_key(x, 1, 5), 1, 5) == x


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.integers(1, 5)), min_size=120, max_size=120),
    st.randoms(use_true_random=False),
)
def test_item_order_does_not_change_scores(values: list, rnd) -> None:
    q = load_questionnaire("ipip-120")
    answers = {str(i + 1): v for i, v in enumerate(values)}
    shuffled_items = list(q.items)
    rnd.shuffle(shuffled_items)
    q2 = q.model_copy(update={"items": tuple(shuffled_items)})
    keys = list(answers)
    rnd.shuffle(keys)
    a = score_answers(q, answers)
    b = score_answers(q2, {k: answers[k] for k in keys})
    for scale, sc in a.scales.items():
        other = b.scales[scale]
        assert sc.n_answered == other.n_answered
        if sc.mean is None:
            assert other.mean is None
        else:
            assert other.mean == pytest.approx(sc.mean)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=120, max_size=120))
def test_reversing_answers_and_keys_gives_same_scores(values: list) -> None:
    q = load_questionnaire("ipip-120")
    flipped = q.model_copy(
        update={"items": tuple(i.model_copy(update={"reversed": not i.reversed}) for i in q.items)}
    )
    answers = {str(i + 1): v for i, v in enumerate(values)}
    mirrored = {k: reverse_key(v, 1, 5) for k, v in answers.items()}
    assert score_answers(q, answers).means() == pytest.approx(
        score_answers(flipped, mirrored).means()
    )
