"""Questionnaire files: the format, bundled banks, and one-line errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from personae.errors import InputError
from personae.instruments import load_answers, load_questionnaire, score_answers

FIXTURES = Path(__file__).parents[1] / "fixtures" / "instruments"
MINI = yaml.safe_load((FIXTURES / "mini.yaml").read_text())


def test_user_file_loads_and_scores() -> None:
    q = load_questionnaire(FIXTURES / "mini.yaml")
    s = score_answers(q, {"e1": 5, "e2": 1, "c1": None})
    assert s.scales["E"].mean == 5.0 and s.scales["E1"].mean == 5.0
    assert s.scales["C"].mean is None and s.n_refused == 1


def test_render_fills_only_the_item_slot() -> None:
    q = load_questionnaire(FIXTURES / "mini.yaml")
    # Braces in item text stay literal: replacement, not str.format or a template engine.
    assert q.render("e1") == 'Statement: "Make friends easily. {not a slot}" Reply 1-5: '


def test_bundled_banks_render_psyborgs_prompt() -> None:
    q = load_questionnaire("ipip-300")
    prompt = q.render(1)
    assert prompt.startswith('Thinking about the statement, "Worry about things."')
    assert prompt.endswith("RATING: ")
    assert q.render(1, "plain").startswith("Statement: Worry about things.")
    assert q.licence and "public domain" in q.licence


def test_json_file_loads(tmp_path: Path) -> None:
    p = tmp_path / "mini.json"
    p.write_text(json.dumps(MINI))
    assert load_questionnaire(p).name == "mini-extraversion"


def _write(tmp_path: Path, data: object, name: str = "q.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


def _mutate(**changes: object) -> dict:
    d = json.loads(json.dumps(MINI))
    for path, value in changes.items():
        *head, last = path.split("__")
        node = d
        for part in head:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return d


_DELETE = object()

BAD = {
    "bad-yaml": ("name: [unclosed\nitems: {", "invalid YAML at line"),
    "not-a-mapping": ("- just\n- a list\n", "expected a mapping"),
    "missing-field": (
        _mutate(items__1__text=_DELETE),
        "items.1.text: Field required [item id 'e2']",
    ),
    "missing-items": (_mutate(items=_DELETE), "items: Field required"),
    "duplicate-item": (_mutate(items__2__id="e1"), "duplicate item id 'e1'"),
    "unknown-scale": (_mutate(items__2__scale="X"), "item 'c1' refers to unknown scale 'X'"),
    "unknown-facet": (_mutate(items__0__facet="E9"), "item 'e1' refers to unknown facet 'E9'"),
    "facet-of-other-domain": (_mutate(items__2__facet="E1"), "'E1' is not a facet of scale 'C'"),
    "unknown-domain": (_mutate(scales__1__domain="Z"), "scale 'E1' refers to unknown domain 'Z'"),
    "repeated-response-value": (
        _mutate(response_scale__4={"value": 4, "label": "again"}),
        "response_scale has a repeated value",
    ),
    "no-item-slot": (_mutate(prompts__0__template="Rate it"), "exactly once"),
    "bad-reversed": (_mutate(items__0__reversed="sometimes"), "items.0.reversed"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_malformed_file_is_one_line_error_naming_file(tmp_path: Path, case: str) -> None:
    data, expected = BAD[case]
    p = _write(tmp_path, data)
    with pytest.raises(InputError) as info:
        load_questionnaire(p)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{p}: ")
    assert expected in msg


def test_bad_json_names_file_and_line(tmp_path: Path) -> None:
    p = _write(tmp_path, '{"name": "x",\n "items": [}', name="q.json")
    with pytest.raises(InputError, match=r"q\.json: invalid JSON at line 2"):
        load_questionnaire(p)


def test_unknown_name_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such questionnaire file .*ipip-120"):
        load_questionnaire("ipip-999")


@pytest.mark.parametrize(
    "answers,expected",
    [
        ({"e1": 6}, "item 'e1': answer 6 is outside the response scale 1..5"),
        ({"e1": 0.5}, "outside the response scale"),
        ({"zz": 3}, "item 'zz': not in questionnaire"),
        ({"e1": "high"}, "item 'e1': answer 'high' is not a number"),
        ({"e1": float("nan")}, "outside the response scale"),
    ],
)
def test_answers_outside_the_scale_rejected(tmp_path: Path, answers: dict, expected: str) -> None:
    q = load_questionnaire(FIXTURES / "mini.yaml")
    with pytest.raises(InputError, match=expected):
        score_answers(q, answers)
    p = tmp_path / "answers.json"
    p.write_text(json.dumps(answers) if answers != {"e1": float("nan")} else '{"e1": NaN}')
    with pytest.raises(InputError) as info:
        load_answers(p, q)
    assert str(info.value).startswith(f"{p}: ") and "\n" not in str(info.value)


def test_five_factor_e_answer_file_with_out_of_scale_value(tmp_path: Path) -> None:
    q = load_questionnaire("ipip-120")
    p = tmp_path / "answers.json"
    p.write_text(json.dumps({"answers": [{"id_question": 7, "id_select": 9}]}))
    with pytest.raises(InputError, match=r"answers\.json: item '7': answer 9 is outside"):
        load_answers(p, q)
