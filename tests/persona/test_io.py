"""Bad persona files give one clear error naming the file, the line and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personae.errors import InputError
from personae.persona import load_personas


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize(
    ("name", "content", "needles"),
    [
        ("bad.yaml", "- name: Ana\n  facts: [unclosed\n", ["bad.yaml:", "invalid YAML"]),
        ("bad.json", '[{"name": "Ana",}]', ["bad.json:1", "invalid JSON"]),
        ("trunc.json", '[{"name": "Ana", "facts": ["I sw', ["trunc.json:1", "invalid JSON"]),
        ("bin.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ["bin.yaml", "binary file"]),
        ("latin.yaml", b"name: Jos\xe9\n", ["latin.yaml", "not UTF-8"]),
        ("empty.yaml", "", ["empty.yaml", "empty"]),
        ("blank.jsonl", "\n  \n", ["blank.jsonl", "empty"]),
        ("nums.yaml", "42\n", ["nums.yaml", "got int"]),
        ("people.csv", "name\nAna\n", ["people.csv", "unsupported file type"]),
        ("empty-list.json", "[]", ["empty-list.json", "empty"]),
    ],
)
def test_malformed_files(tmp_path: Path, name: str, content: str | bytes,
                         needles: list[str]) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(InputError) as exc:
        load_personas(path)
    msg = str(exc.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg


def test_jsonl_bad_line_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "p.jsonl", '{"name": "Ana"}\n{"name": "Bo"}\n{"name": \n{"name": "Cy"}\n')
    with pytest.raises(InputError, match=r"p\.jsonl:3: invalid JSON"):
        load_personas(path)


def test_trait_out_of_range_names_field_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "- name: Ana\n- name: Bo\n  traits:\n    openness: 7\n")
    with pytest.raises(InputError) as exc:
        load_personas(path)
    msg = str(exc.value)
    assert "p.yaml:2" in msg and "traits.openness" in msg and "(got 7)" in msg and "'Bo'" in msg


def test_jsonl_validation_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "p.jsonl", '{"name": "Ana"}\n{"name": "Bo", "traits": {"neuroticism": 0}}\n')
    with pytest.raises(InputError, match=r"p\.jsonl:2: .*traits\.neuroticism"):
        load_personas(path)


def test_duplicate_ids_name_both_places(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "- id: a\n  name: Ana\n- id: a\n  name: Bo\n")
    with pytest.raises(InputError, match=r"p\.yaml:3: duplicate persona id 'a' \(first at .*p\.yaml:1\)"):
        load_personas(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_personas(tmp_path / "nope.yaml")
    (tmp_path / "d.yaml").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        load_personas(tmp_path / "d.yaml")


def test_yaml_line_numbers_of_records(fixtures_dir: Path) -> None:
    ana, bo = load_personas(fixtures_dir / "native.yaml")
    assert (ana.source.line, bo.source.line) == (1, 6)
    assert bo.facts == ["I repair fishing boats in Gothenburg."]


def test_multi_document_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "name: Ana\n---\nname: Bo\n")
    assert [p.name for p in load_personas(path)] == ["Ana", "Bo"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200), suffix=st.sampled_from([".yaml", ".json", ".jsonl", ".txt"]))
def test_arbitrary_bytes_never_crash(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        load_personas(path)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
