"""Administration: messages, both answer modes, the robustness variants, resuming."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import yaml

from personae.errors import InputError, RunError
from personae.instruments import load_questionnaire
from personae.instruments.administer import (
    PREFILL,
    ItemAnswer,
    administer,
    administration_order,
    expand_variants,
    item_messages,
    parse_answer,
    resolve_variant,
    score_administration,
)
from personae.instruments.robustness import variant_spread
from personae.models import Message
from personae.models.scripted import ScriptedModel
from tests.instruments.fakes import FakeModel, always, shown_options

T = TypeVar("T")
Q = load_questionnaire("ipip-120")
FIRST = [str(i) for i in range(1, 21)]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# ----------------------------------------------------------------------------- prompts


def test_prompt_has_system_persona_and_item_with_options_listed() -> None:
    messages = item_messages(Q, "2", resolve_variant(Q, "base"), system="You are Ana.")
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[0].content == "You are Ana."
    assert '"Make friends easily."' in messages[1].content
    assert shown_options(messages[1].content) == {
        "1": "Very Inaccurate", "2": "Moderately Inaccurate",
        "3": "Neither Accurate Nor Inaccurate", "4": "Moderately Accurate",
        "5": "Very Accurate"}
    assert [m.role for m in item_messages(Q, "2", resolve_variant(Q, "base"))] == ["user"]


def test_reversed_lists_labels_the_other_way_with_the_same_wording() -> None:
    base = item_messages(Q, "1", resolve_variant(Q, "base"))[-1].content
    rev = item_messages(Q, "1", resolve_variant(Q, "reversed"))[-1].content
    assert shown_options(rev)["1"] == "Very Accurate" and shown_options(rev)["5"] == \
        "Very Inaccurate"
    # Only the option listing differs.
    assert base.split("(where")[0] == rev.split("(where")[0]
    assert base.endswith("RATING: ") and rev.endswith("RATING: ")


@pytest.mark.parametrize("name", ["ipip-120", "ipip-300"])
def test_bundled_banks_have_three_paraphrases_of_distinct_wording(name: str) -> None:
    q = load_questionnaire(name)
    ids = [v.id for v in expand_variants(q, ["paraphrase"])]
    assert len(ids) >= 3
    prompts = {q.render(1, t.id) for t in q.templates()}
    assert len(prompts) == len(q.templates()) >= 4
    for t in q.templates():  # every template can be reversed
        assert t.lists_options
        assert "Worry about things." in q.render(1, t.id, reverse_options=True)


def test_variant_groups_expand() -> None:
    assert [v.id for v in expand_variants(Q, ["base", "shuffled"])] == \
        ["base", "ordered", "shuffled"]
    assert len(expand_variants(Q, ["all"])) == 7
    with pytest.raises(InputError, match="unknown variant 'sideways'"):
        expand_variants(Q, ["sideways"])
    with pytest.raises(InputError, match="unknown prompt 'nope'"):
        resolve_variant(Q, "paraphrase:nope")


def _mini(tmp_path: Path, template: str) -> Path:
    data = {"name": "mini", "response_scale": [{"value": v, "label": f"L{v}"}
                                               for v in range(1, 6)],
            "prompts": [{"id": "only", "template": template}],
            "scales": [{"id": "E", "name": "Extraversion"}],
            "items": [{"id": "e1", "text": "Talk a lot.", "scale": "E"}]}
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_variants_a_questionnaire_cannot_support_are_input_errors(tmp_path: Path) -> None:
    q = load_questionnaire(_mini(tmp_path, 'Statement "{item}". Reply 1-5: '))
    with pytest.raises(InputError, match="has no {options} slot"):
        resolve_variant(q, "reversed")
    with pytest.raises(InputError, match="paraphrase variant needs two or more"):
        expand_variants(q, ["paraphrase"])


def test_options_slot_at_most_once(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="at most once"):
        load_questionnaire(_mini(tmp_path, "{item} {options} {options}"))


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(("text", "reverse", "value"), [
    ("4", False, 4.0),
    (" 2.", False, 2.0),
    ("RATING 5 - very accurate", False, 5.0),
    ("4", True, 2.0),                    # shown 4 = "Moderately Inaccurate" when reversed
    ("1", True, 5.0),
    ("7", False, None),                  # off the scale: unparsable, not clipped
    ("0", False, None),
    ("3.5", False, None),
    ("", False, None),
    ("I cannot answer that.", False, None),
    ("Moderately Accurate", False, 4.0),
    ("moderately accurate", True, 4.0),  # a label means the same in either listing
    ("Very Inaccurate", False, 1.0),
    ("Very Accurate, or maybe Very Inaccurate", False, None),
])
def test_parse_answer_is_strict(text: str, reverse: bool, value: float | None) -> None:
    assert parse_answer(text, Q, reverse=reverse) == value


# ----------------------------------------------------------------------------- logprob mode


def test_logprob_expected_value_argmax_and_coverage() -> None:
    model = FakeModel(always("Moderately Accurate"), confidence=0.6)
    answers = run(administer(model, Q, items=["1", "2"]))
    rest = 0.4 / 5
    expected = 4 * (0.6 + rest) + (1 + 2 + 3 + 5) * rest
    assert [a.item_id for a in answers] == ["1", "2"]
    assert answers[0].value == pytest.approx(expected) == 3.6
    assert answers[0].argmax == 4.0
    assert answers[0].coverage == pytest.approx(1.0)
    assert answers[0].probs == pytest.approx([rest, rest, rest, 0.6 + rest, rest])
    assert answers[0].reply == f"{PREFILL}4"
    assert model.prefills == [PREFILL, PREFILL]


def test_reversed_answers_map_back_to_the_same_scale_value() -> None:
    model = FakeModel(always("Moderately Accurate"), confidence=0.6)
    base = run(administer(model, Q, items=FIRST))
    rev = run(administer(model, Q, items=FIRST, variant="reversed"))
    assert [a.argmax for a in rev] == [4.0] * 20
    assert [a.value for a in rev] == pytest.approx([a.value for a in base])
    # ...while the digit the model chose was the mirrored one.
    assert rev[0].reply == f"{PREFILL}2"
    assert rev[0].probs == pytest.approx(list(reversed(base[0].probs)))


def test_a_digit_picker_shows_up_as_an_option_order_effect() -> None:
    model = FakeModel(always("5"))  # always the last digit, whatever it means
    base = score_administration(Q, run(administer(model, Q, items=FIRST)))
    rev = score_administration(Q, run(administer(model, Q, items=FIRST, variant="reversed")))
    spread = variant_spread({"base": base.means(), "reversed": rev.means()})
    gap = abs(base.means()["N"] - rev.means()["N"])
    assert gap > 1 and spread["N"].range == pytest.approx(gap)


def test_no_mass_on_the_options_is_unparsable() -> None:
    model = ScriptedModel(choices={"yes": 1.0})  # no probability on "1".."5"
    answers = run(administer(model, Q, items=["1"]))
    assert answers[0].value is None and answers[0].unparsable


def test_backend_that_cannot_prefill_is_asked_without() -> None:
    model = FakeModel(always("Moderately Accurate"), prefill_ok=False)
    answers = run(administer(model, Q, items=["1", "2", "3"]))
    assert [a.argmax for a in answers] == [4.0] * 3
    assert {a.prefill for a in answers} == {""}
    assert model.prefills == ["", "", ""]


# ----------------------------------------------------------------------------- generate mode


def test_generate_mode_parses_and_counts_unparsable() -> None:
    replies = {"Worry about things.": "4", "Make friends easily.": "Very Accurate",
               "Have a vivid imagination.": "9", "Trust others.": "Sorry, I can't."}
    model = ScriptedModel(rules=[(text.replace(".", r"\."), reply)
                                 for text, reply in replies.items()], replies=["3"])
    answers = run(administer(model, Q, items=["1", "2", "3", "4", "5"], mode="generate"))
    assert [a.value for a in answers] == [4.0, 5.0, None, None, 3.0]
    assert [a.raw for a in answers] == ["4", "Very Accurate", "9", "Sorry, I can't.", "3"]
    scores = score_administration(Q, answers)
    assert scores.n_refused == 120 - 3


def test_generate_mode_reversed_maps_digits_back() -> None:
    model = FakeModel(always("Very Accurate"))  # replies with the digit shown for the label
    answers = run(administer(model, Q, items=["1", "2"], mode="generate", variant="reversed"))
    assert [a.raw for a in answers] == ["1", "1"]
    assert [a.value for a in answers] == [5.0, 5.0]


# ----------------------------------------------------------------------------- item order


def test_shuffled_order_is_reproducible_with_the_seed() -> None:
    v = resolve_variant(Q, "shuffled")
    a = administration_order(Q, v, seed=3)
    assert a == administration_order(Q, v, seed=3)
    assert a != administration_order(Q, v, seed=4)
    assert sorted(a, key=int) == [i.id for i in Q.items] != a
    assert administration_order(Q, resolve_variant(Q, "ordered")) == [i.id for i in Q.items]


def _history_len(messages: Sequence[Message]) -> str:
    # Agrees more the more earlier items it has seen: an order-dependent respondent.
    turns = sum(m.role == "user" for m in messages) - 1
    return str(min(5, 1 + turns // 2))


def test_blocks_are_running_conversations_in_the_administered_order() -> None:
    model = FakeModel(_history_len, concurrency=1)
    answers = run(administer(model, Q, items=FIRST, variant="shuffled", seed=7, block_size=5))
    order = administration_order(Q, resolve_variant(Q, "shuffled"), FIRST, seed=7)
    assert [a.item_id for a in answers] == order
    assert [a.block for a in answers] == [k // 5 for k in range(20)]
    # The 3rd item of a block sees the first two items and the model's own answers.
    third = model.requests[2]
    assert [m.role for m in third] == ["user", "assistant", "user", "assistant", "user"]
    assert Q.item(order[0]).text in third[0].content
    assert third[1].content == f"{PREFILL}{_history_len(model.requests[0])}"
    assert Q.item(order[2]).text in third[4].content
    # With the system prompt first in every turn.
    sys_model = FakeModel(_history_len)
    run(administer(sys_model, Q, items=FIRST[:3], variant="ordered", system="You are Ana."))
    assert all(r[0].content == "You are Ana." for r in sys_model.requests)


def test_order_matters_for_a_history_dependent_respondent() -> None:
    model = FakeModel(_history_len)
    ordered = score_administration(Q, run(administer(model, Q, items=FIRST, variant="ordered",
                                                     block_size=10)))
    shuffled = score_administration(Q, run(administer(model, Q, items=FIRST, seed=1,
                                                      variant="shuffled", block_size=10)))
    independent = score_administration(Q, run(administer(model, Q, items=FIRST)), use="argmax")
    assert independent.means()["E"] == 1.0  # no history: always "1"
    assert ordered.means() != shuffled.means()


# ----------------------------------------------------------------------------- resuming


@pytest.mark.parametrize("variant", ["base", "ordered"])
def test_interrupted_administration_resumes_without_duplicates(variant: str) -> None:
    stored: dict[str, ItemAnswer] = {}
    failures: list[str] = []
    broken = FakeModel(_history_len, fail_after=7, concurrency=1)
    run(administer(broken, Q, items=FIRST, variant=variant, on_answer=lambda a:
                   stored.__setitem__(a.item_id, a), failures=failures, block_size=10))
    assert len(stored) == 7 and failures
    fixed = FakeModel(_history_len, concurrency=1)
    new: list[ItemAnswer] = []
    answers = run(administer(fixed, Q, items=FIRST, variant=variant, done=stored,
                             on_answer=new.append, block_size=10))
    assert len(fixed.requests) == len(new) == 13
    assert {a.item_id for a in new}.isdisjoint(stored)
    assert [a.item_id for a in answers] == FIRST
    clean = run(administer(FakeModel(_history_len), Q, items=FIRST, variant=variant,
                           block_size=10))
    # The resumed conversation continued from the stored replies: same answers as unbroken.
    assert [a.value for a in answers] == [a.value for a in clean]


def test_without_a_failures_list_a_failed_call_raises() -> None:
    with pytest.raises(RunError, match="down"):
        run(administer(FakeModel(always("1"), fail_after=0), Q, items=["1"]))


def test_unknown_items_and_modes_are_input_errors() -> None:
    with pytest.raises(InputError, match="unknown item '999'"):
        run(administer(FakeModel(always("1")), Q, items=["999"]))
    with pytest.raises(InputError, match="unknown mode"):
        bad_mode: Any = "guess"
        run(administer(FakeModel(always("1")), Q, items=["1"], mode=bad_mode))


# ----------------------------------------------------------------------------- spread


def test_spread_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    means = {f"v{k}": {"E": float(x), "A": float(y)} for k, (x, y) in
             enumerate(rng.uniform(1, 5, size=(5, 2)))}
    spread = variant_spread(means)
    xs = np.array([m["E"] for m in means.values()])
    assert spread["E"].range == pytest.approx(np.ptp(xs))
    assert spread["E"].sd == pytest.approx(np.std(xs, ddof=1))
    assert spread["E"].by_variant == {k: m["E"] for k, m in means.items()}
    one = variant_spread({"base": {"E": 3.0}})
    assert one["E"].range is None and one["E"].sd is None and one["E"].n == 1
