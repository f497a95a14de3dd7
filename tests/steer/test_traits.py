"""Trait files: the bundled set, and one-line errors for malformed files."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import pytest

from personae.errors import InputError
from personae.steer.traits import TraitSpec, bundled_traits, load_trait, parse_trait_file

REQUIRED = ["extroverted", "introverted", "optimistic", "pessimistic", "formal", "casual",
            "agreeable", "conscientious", "neurotic", "curious"]


def test_bundled_traits_load_with_their_hash() -> None:
    assert set(REQUIRED) <= set(bundled_traits())
    folder = resources.files("personae.steer").joinpath("data", "traits")
    for name in REQUIRED:
        t = load_trait(name)
        assert (t.name, len(t.instruction), len(t.questions)) == (name, 5, 40)
        assert all(p.pos and p.neg and p.pos != p.neg for p in t.instruction)
        assert "{question}" in (t.eval_prompt or "") and "{answer}" in (t.eval_prompt or "")
        digest = hashlib.sha256(folder.joinpath(f"{name}.json").read_bytes()).hexdigest()
        assert t.source_hash == digest
        assert t.source == f"bundled:{name}"


def test_notice_names_source_commit_and_licence() -> None:
    notice = resources.files("personae.steer").joinpath("data", "traits", "NOTICE.md")
    text = notice.read_text()
    assert "safety-research/assistant-axis" in text
    assert "a98961956072224eaf244eb289d6c01700b63795" in text
    assert "MIT License" in text and "Permission is hereby granted" in text
    for name in REQUIRED:  # every bundled file is listed with its hash
        digest = hashlib.sha256(resources.files("personae.steer").joinpath(
            "data", "traits", f"{name}.json").read_bytes()).hexdigest()
        assert f"{name}.json | `{digest}`" in text


def test_load_from_a_file_takes_the_stem_as_name(tmp_path: Path) -> None:
    path = tmp_path / "sarcastic.json"
    path.write_text(json.dumps({"instruction": [{"pos": " Be sarcastic. ", "neg": "Be sincere."}],
                                "questions": ["How was the movie?"], "extra_key": 1}))
    t = load_trait(path)
    assert t.name == "sarcastic" and t.instruction[0].pos == "Be sarcastic."
    assert t.eval_prompt is None and t.n_pairs == 1
    assert t.source == str(path)
    assert t.source_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_trait(str(path)) == t


def test_limit_takes_the_first_items() -> None:
    t = load_trait("formal").limit(n_instructions=2, n_questions=3)
    full = load_trait("formal")
    assert t.instruction == full.instruction[:2] and t.questions == full.questions[:3]
    assert t.n_pairs == 6
    assert load_trait("formal").limit() == full
    with pytest.raises(InputError, match="n_questions must be at least 1"):
        full.limit(n_questions=0)


GOOD_PAIR = {"pos": "Be kind.", "neg": "Be cruel."}


@pytest.mark.parametrize(("content", "needle"), [
    ('{"instruction": [{"pos": "Be kind."}], "questions": ["Hi?"]}', "instruction.0.neg"),
    ('{"instruction": [{"neg": "Be cruel."}], "questions": ["Hi?"]}', "instruction.0.pos"),
    ('{"instruction": [{"pos": "", "neg": "x"}], "questions": ["Hi?"]}', "instruction.0.pos"),
    (json.dumps({"instruction": [GOOD_PAIR], "questions": []}), "questions"),
    (json.dumps({"instruction": [GOOD_PAIR]}), "questions: Field required"),
    (json.dumps({"instruction": [], "questions": ["Hi?"]}), "instruction"),
    (json.dumps({"instruction": [GOOD_PAIR], "questions": ["Hi?", "  "]}), "questions.1"),
    (json.dumps({"instruction": [GOOD_PAIR], "questions": "Hi?"}), "questions"),
    ('{"instruction": [', "not valid JSON (line 1"),
    ('[{"pos": "a", "neg": "b"}]', "a trait file is a JSON object"),
])
def test_malformed_files_are_one_line_errors(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        load_trait(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: ")
    assert needle in msg


def test_unknown_trait_lists_the_bundled_ones(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^nope: no such trait file or bundled trait "
                                         r"\(bundled: .*extroverted"):
        load_trait("nope")
    with pytest.raises(InputError, match="is a directory"):
        load_trait(tmp_path)
    with pytest.raises(InputError, match="not a text file"):
        parse_trait_file(b"\xff\xfe\x00", name="x", source="x.json")


def test_spec_is_constructible_in_code() -> None:
    t = TraitSpec(name="calm", instruction=[GOOD_PAIR], questions=["Why?"])
    assert t.instruction[0].neg == "Be cruel."
