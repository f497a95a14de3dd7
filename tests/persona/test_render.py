from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personae.errors import InputError
from personae.persona import Persona, load_bundled, load_template, render_system_prompt

INJECTION = Persona(
    name="{{ 7*7 }}",
    summary="I say {% for x in range(3) %}loop{% endfor %} and {{ ''.__class__ }}",
    facts=["{% for %}", "{{ config }}", "{# comment #}"],
    style="{{ persona.name }}",
)


@pytest.mark.parametrize("template", ["personagym", "card", "facts"])
def test_persona_text_is_data_never_code(template: str) -> None:
    out = render_system_prompt(INJECTION, template)
    assert "49" not in out and "looploop" not in out
    if template != "facts":
        assert "{% for x in range(3) %}loop{% endfor %}" in out
    if template == "card":
        assert "{{ 7*7 }}" in out and "{% for %}" in out and "{{ persona.name }}" in out


def test_personagym_template_matches_upstream_wording() -> None:
    out = render_system_prompt(Persona(summary="A 35-year-old chef from Lyon"), "personagym")
    assert out == ("Adopt the identity of A 35-year-old chef from Lyon. Answer the questions "
                   "while staying in strict accordance with the nature of this identity.")


def test_card_template_uses_fields() -> None:
    p = load_bundled("sample")[0]
    out = render_system_prompt(p, "card")
    assert p.name in out and p.facts[0] in out and "Extraversion" in out
    assert "never say you are an AI" in out


def test_user_template_file(tmp_path: Path) -> None:
    path = tmp_path / "t.j2"
    path.write_text("Be {{ p.name }} ({{ traits.get('extraversion', '?') }}).")
    out = render_system_prompt(Persona(name="Ana", traits={"extraversion": 2}), str(path))
    assert out == "Be Ana (2.0)."


def test_user_template_is_sandboxed(tmp_path: Path) -> None:
    path = tmp_path / "evil.j2"
    path.write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(InputError, match="evil.j2"):
        render_system_prompt(Persona(name="Ana"), str(path))


def test_template_errors_are_input_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.j2"
    bad.write_text("line one\n{% if %}\n")
    with pytest.raises(InputError, match=r"bad\.j2:2: template syntax error"):
        load_template(str(bad))
    typo = tmp_path / "typo.j2"
    typo.write_text("{{ p.nmae.upper() }}")
    with pytest.raises(InputError, match="typo.j2"):
        render_system_prompt(Persona(name="Ana"), str(typo))
    with pytest.raises(InputError, match="unknown template 'nope'"):
        load_template("nope")


@pytest.mark.parametrize("body", ["{{ 1/0 }}", "{{ 10.0**1000 }}", "{{ range(10**7)|list }}",
                                  "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"])
def test_template_runtime_failures_are_input_errors(tmp_path: Path, body: str) -> None:
    path = tmp_path / "t.j2"
    path.write_text("Hello\n" + body)
    with pytest.raises(InputError, match=r"template .*t\.j2"):
        render_system_prompt(Persona(name="Ana"), str(path))


def test_personagym_template_has_no_double_period() -> None:
    out = render_system_prompt(Persona(summary="A weaver from Cusco."), "personagym")
    assert ".." not in out and out.startswith("Adopt the identity of A weaver from Cusco. Answer")


def test_card_renders_every_demographic_key_the_schema_accepts() -> None:
    p = Persona(name="Ola", summary="A baker.",
                demographics={"country": "Poland", "marital_status": "married", "age": 40,
                              "pets": ["cat", "dog"], "family": {"kids": 2, "home_town": "Łódź"}})
    out = render_system_prompt(p, "card")
    assert "- Country: Poland" in out and "- Marital status: married" in out
    assert "- Pets: cat, dog" in out and "- Age: 40" in out
    assert "- Family: kids: 2, home town: Łódź" in out
    assert load_template("card").unused_fields(p) == []


def test_unused_fields_names_what_a_template_leaves_out() -> None:
    p = Persona(name="Ola", summary="A baker.", facts=["I bake rye."], style="Brisk.",
                demographics={"country": "Poland"}, traits={"openness": 4},
                extra={"hobby": "chess"})
    assert load_template("card").unused_fields(p) == ["extra.hobby"]
    # PersonaChat style shows the facts only.
    assert load_template("facts").unused_fields(p) == [
        "name", "summary", "demographics.country", "traits.openness", "style", "extra.hobby"]
    # PersonaGym's prompt reads the one-line description: the summary, nothing else.
    gym = load_template("personagym").unused_fields(p)
    assert "summary" not in gym and "facts" in gym and "demographics.country" in gym


_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=12)


@settings(max_examples=60, deadline=None)
@given(key=_WORD.filter(lambda k: k not in Persona.model_fields["demographics"]
                        .annotation.model_fields),  # type: ignore[union-attr]
       value=_WORD)
def test_every_field_is_rendered_or_reported(key: str, value: str) -> None:
    p = Persona(name="Ola", summary="A baker.", demographics={key: value},
                extra={key: value})
    for name in ("card", "facts", "personagym"):
        tpl = load_template(name)
        out, unused = tpl.render(p), tpl.unused_fields(p)
        for path in (f"demographics.{key}", f"extra.{key}"):
            assert path in unused or value in out, (name, path)
    assert f"demographics.{key}" not in load_template("card").unused_fields(p)


def test_a_template_that_fails_without_a_field_uses_it(tmp_path: Path) -> None:
    path = tmp_path / "age.j2"
    path.write_text("You are {{ p.name }}, aged {{ p.demographics.age + 1 }}.")
    p = Persona(name="Ola", summary="A baker.", demographics={"age": 40})
    assert load_template(str(path)).unused_fields(p) == ["summary"]
