from __future__ import annotations

from pathlib import Path

import pytest

from personae.errors import InputError
from personae.persona import load_bundled, load_personas, resolve_personas


def test_tinytroupe_agent(fixtures_dir: Path) -> None:
    (lisa,) = load_personas(fixtures_dir / "Lisa.agent.json")
    assert lisa.name == "Lisa Carter" and lisa.id == "lisa-carter"
    assert lisa.demographics.age == 28 and lisa.demographics.occupation == "Data Scientist"
    assert lisa.traits.openness == 4.5 and lisa.traits.neuroticism == 1.5
    assert lisa.traits.extraversion == 3.0
    assert any("Vancouver" in f for f in lisa.facts)
    assert "Microsoft" in lisa.backstory
    assert "preferences" in lisa.extra and lisa.source.format == "tinytroupe"


def test_personahub_lines(fixtures_dir: Path) -> None:
    a, b = load_personas(fixtures_dir / "personahub.jsonl")
    assert a.summary.startswith("A marine biologist") and a.source.format == "personahub"
    assert b.extra == {"id_hint": 7} and b.source.line == 2


def test_personachat_text_is_one_persona_of_facts(fixtures_dir: Path) -> None:
    (p,) = load_personas(fixtures_dir / "personachat.txt")
    assert p.facts == ["i have two dogs.", "i like to ski.", "my favourite food is pizza.",
                       "i work as a nurse."]


def test_personachat_json(fixtures_dir: Path) -> None:
    a, b = load_personas(fixtures_dir / "personachat.json")
    assert a.facts == ["i love jazz.", "i am a night owl."] and b.source.format == "personachat"


def test_personachat_forced_format_for_fact_list(tmp_path: Path) -> None:
    path = tmp_path / "facts.json"
    path.write_text('["i like tea.", "i knit."]')
    assert len(load_personas(path)) == 2  # auto: a list of one-liners
    (p,) = load_personas(path, format="personachat")
    assert p.facts == ["i like tea.", "i knit."]


def test_personagym_one_liners(fixtures_dir: Path) -> None:
    a, b = load_personas(fixtures_dir / "personagym.json")
    assert a.summary == "A 35-year-old chef from Lyon who loves jazz"
    assert a.source.format == "personagym" and a.id != b.id


def test_bundled_sets() -> None:
    gym = load_bundled("personagym")
    assert len(gym) == 200 and gym[0].id == "personagym-001"
    assert gym[0].source.license == "MIT"
    sample = load_bundled("sample")
    assert len(sample) == 20
    assert all(p.traits and len(p.traits.as_dict()) == 5 for p in sample)
    for trait in ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism"):
        levels = [getattr(p.traits, trait) for p in sample]
        assert min(levels) <= 2 and max(levels) >= 4, trait
    assert len({p.demographics.nationality for p in sample}) >= 15


def test_resolve_references() -> None:
    (p,) = resolve_personas("sample:rosa-cusco-weaver")
    assert p.name and "Cusco" in p.summary
    with pytest.raises(InputError, match="no persona 'nobody'"):
        resolve_personas("sample:nobody")


def test_wrong_shape_for_forced_format(fixtures_dir: Path) -> None:
    with pytest.raises(InputError, match="not a valid tinytroupe persona"):
        load_personas(fixtures_dir / "personagym.json", format="tinytroupe")
    with pytest.raises(InputError, match="unknown persona format"):
        load_personas(fixtures_dir / "personagym.json", format="bogus")


def test_tinytroupe_keeps_what_it_does_not_map(fixtures_dir: Path) -> None:
    (lisa,) = load_personas(fixtures_dir / "Lisa.agent.json")
    assert lisa.extra["personality"]["big_five"]["openness"].startswith("High.")
    assert lisa.extra["long_term_goals"] and lisa.extra["skills"]


def test_personahub_keeps_name_and_id(tmp_path: Path) -> None:
    path = tmp_path / "hub.jsonl"
    path.write_text('{"persona": "A nurse.", "name": "Ana", "id": "ana-1", "lang": "pt"}\n')
    (p,) = load_personas(path)
    assert (p.name, p.id, p.extra) == ("Ana", "ana-1", {"lang": "pt"})
