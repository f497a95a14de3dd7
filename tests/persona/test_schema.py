from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from personae.persona import Persona, load_personas, save_personas
from personae.persona.schema import Population


def test_id_is_derived_from_name_or_content() -> None:
    assert Persona(name="Ana María López").id == "ana-mar-a-l-pez"
    a = Persona(summary="a pilot")
    assert a.id.startswith("p-") and a.id == Persona(summary="a pilot").id
    assert a.id != Persona(summary="a sailor").id


def test_persona_needs_content() -> None:
    with pytest.raises(ValidationError, match="at least one of"):
        Persona()


@pytest.mark.parametrize("value", [0, 5.5, -1, 6])
def test_traits_outside_likert_range_are_rejected(value: float) -> None:
    with pytest.raises(ValidationError, match="traits.openness"):
        Persona(name="x", traits={"openness": value})


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="trait"):
        Persona(name="x", trait={"openness": 3})


def test_bad_id_is_rejected() -> None:
    with pytest.raises(ValidationError, match="id"):
        Persona(id="has spaces", name="x")


def test_population_rejects_duplicate_ids() -> None:
    with pytest.raises(ValidationError, match="duplicate"):
        Population(personas=[Persona(id="a", name="x"), Persona(id="a", name="y")])


def test_describe_composes_from_fields() -> None:
    p = Persona(name="Bo", demographics={"age": 60, "occupation": "boat builder",
                                         "location": "Gothenburg"}, facts=["I sail."])
    assert p.describe() == "Bo, 60-year-old, boat builder, from Gothenburg. I sail."


text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
    lambda s: s.strip() == s and s != "")
personas = st.builds(
    Persona,
    name=text,
    summary=st.none() | text,
    facts=st.lists(text, max_size=4),
    traits=st.none() | st.builds(dict, extraversion=st.floats(1, 5), openness=st.floats(1, 5)),
    values=st.lists(text, max_size=2),
    extra=st.dictionaries(st.sampled_from(["k", "note"]), st.integers() | text, max_size=2),
)


@settings(max_examples=40, deadline=None)
@given(ps=st.lists(personas, min_size=1, max_size=4, unique_by=lambda p: p.id),
       suffix=st.sampled_from([".yaml", ".json", ".jsonl", ".parquet"]))
def test_save_then_load_round_trips(tmp_path_factory: pytest.TempPathFactory,
                                    ps: list[Persona], suffix: str) -> None:
    path = tmp_path_factory.mktemp("rt") / f"people{suffix}"
    save_personas(ps, path)
    back = load_personas(path)
    strip = lambda p: p.model_dump(exclude={"source"})
    assert [strip(p) for p in back] == [strip(p) for p in ps]
