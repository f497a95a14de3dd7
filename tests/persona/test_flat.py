"""Flat persona files, as people write them first: ``age: 67`` beside ``name``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from personae.errors import InputError
from personae.persona import Persona, load_personas, save_personas
from personae.persona.schema import FLAT_FIELDS, accepted_fields, lift_flat_fields

INGRID = {
    "name": "Ingrid Solberg",
    "age": 67,
    "occupation": "retired lighthouse keeper",
    "location": "a small island off the coast of Norway",
    "summary": "A taciturn former lighthouse keeper.",
    "facts": ["I kept the light for 31 years."],
    "traits": {"openness": 2, "conscientiousness": 5, "extraversion": 1, "agreeableness": 3,
               "neuroticism": 2},
}


def test_flat_fields_move_into_demographics() -> None:
    p = Persona(**INGRID)
    assert p.demographics.age == 67 and p.demographics.occupation == "retired lighthouse keeper"
    assert p.demographics.location == "a small island off the coast of Norway"
    assert p.id == "ingrid-solberg" and p.traits and p.traits.extraversion == 1


@pytest.mark.parametrize(("key", "target"), [("sex", "gender"), ("job", "occupation"),
                                             ("profession", "occupation"),
                                             ("residence", "location"), ("city", "city"),
                                             ("country", "country"),
                                             ("ethnicity", "ethnicity")])
def test_synonyms(key: str, target: str) -> None:
    p = Persona(name="Ana", **{key: "x"})
    assert p.demographics.model_dump()[target] == "x"


def test_one_language_is_a_list() -> None:
    assert Persona(name="Ana", language="Portuguese").demographics.languages == ["Portuguese"]


def test_nested_input_is_untouched_and_hashes_as_before() -> None:
    nested = {"name": "Ingrid Solberg", "summary": "A taciturn former lighthouse keeper.",
              "facts": ["I kept the light for 31 years."],
              "demographics": {"age": 67, "occupation": "retired lighthouse keeper",
                               "location": "a small island off the coast of Norway",
                               "city": "Bodø"},
              "traits": {"openness": 2, "extraversion": 1}}
    assert lift_flat_fields(nested) is nested
    p = Persona(**nested)
    # Pinned from the schema before flat fields existed: ids and hashes must not move.
    assert p.content_hash() == "13de3b9e0fe9e4d2f92e633040ef6a5d1ff470c492e6e19bc8ec9bc3bb541aa7"
    flat = {k: v for k, v in nested.items() if k != "demographics"} | nested["demographics"]
    assert Persona(**flat).content_hash() == p.content_hash()
    assert Persona(summary="a pilot").id == "p-fc5845e583"


def test_flat_and_nested_may_agree() -> None:
    p = Persona(name="Ana", age=34, demographics={"age": 34, "gender": "female"})
    assert (p.demographics.age, p.demographics.gender) == (34, "female")


@pytest.mark.parametrize(("fields", "needles"), [
    ({"age": 67, "demographics": {"age": 66}}, ["'age' (67)", "demographics.age (66)"]),
    ({"job": "nurse", "occupation": "pilot"}, ["'job'", "'occupation'", "'nurse'", "'pilot'"]),
    ({"trait": {"openness": 3}}, ["unknown field 'trait'; did you mean 'traits'?"]),
    ({"sumary": "x"}, ["did you mean 'summary'?"]),
    ({"Openness": 3}, ["traits"]),
    ({"hobby": "chess"}, ["unknown field 'hobby'", "extra"]),
    ({"age": 3, "demographics": "old"}, ["demographics must be a mapping"]),
    ({"a\nb": 1}, ["unknown field 'a\\nb'"]),
])
def test_bad_keys_say_what_was_meant(fields: dict[str, Any], needles: list[str]) -> None:
    with pytest.raises(ValidationError) as exc:
        Persona(name="Ana", **fields)
    for n in needles:
        assert n in str(exc.value)


def test_files_flat_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "ingrid.yaml").write_text(yaml.safe_dump(INGRID, sort_keys=False))
    (tmp_path / "ingrid.json").write_text(json.dumps(INGRID))
    a, b = (load_personas(tmp_path / n)[0] for n in ("ingrid.yaml", "ingrid.json"))
    assert a.model_dump(exclude={"source"}) == b.model_dump(exclude={"source"})
    assert a.demographics.age == 67


def test_unknown_key_in_a_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("- name: Ana\n- name: Bo\n  trait: {openness: 3}\n")
    with pytest.raises(InputError) as exc:
        load_personas(path)
    assert str(exc.value) == (f"{path}:2: persona 'Bo': unknown field 'trait'; "
                              "did you mean 'traits'?")


def test_conflict_in_a_file_names_both(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: Ana\nage: 34\ndemographics: {age: 43}\n")
    with pytest.raises(InputError, match=r"p\.yaml:1: persona 'Ana': 'age' \(34\) conflicts "
                                         r"with demographics\.age \(43\)"):
        load_personas(path)


def test_saving_writes_the_nested_form(tmp_path: Path) -> None:
    (tmp_path / "ingrid.yaml").write_text(yaml.safe_dump(INGRID, sort_keys=False))
    save_personas(load_personas(tmp_path / "ingrid.yaml"), tmp_path / "out.yaml")
    (row,) = yaml.safe_load((tmp_path / "out.yaml").read_text())
    assert row["demographics"] == {"age": 67, "location": INGRID["location"],
                                   "occupation": INGRID["occupation"]}
    assert not set(row) & set(FLAT_FIELDS) and "source" not in row


keys = st.sampled_from(accepted_fields()) | st.text(max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-200, 200) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=st.dictionaries(keys, json_values, max_size=6))
def test_any_mapping_is_a_persona_or_one_input_error(tmp_path: Path,
                                                     record: dict[str, Any]) -> None:
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(record))
    try:
        load_personas(path, format="personae")
    except InputError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(record=st.dictionaries(keys, json_values, max_size=6),
       demographics=st.none() | json_values)
def test_the_python_api_raises_only_validation_errors(record: dict[str, Any],
                                                      demographics: Any) -> None:
    if demographics is not None:
        record = record | {"demographics": demographics}
    try:
        p = Persona.model_validate(record)
    except ValidationError:
        return
    assert not set(record) - set(Persona.model_fields) - set(FLAT_FIELDS)
    assert Persona.model_validate(p.model_dump()) == p
