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
        ("p.parquet", "name\nAna\n", ["p.parquet", "not a readable Parquet file"]),
        ("p.png", "name: Ana\n", ["p.png", "not a PNG image"]),
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
@given(data=st.binary(max_size=200),
       suffix=st.sampled_from([".yaml", ".json", ".jsonl", ".txt", ".parquet", ".png"]))
def test_arbitrary_bytes_never_crash(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        load_personas(path)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85", "\x0c"])
def test_jsonl_round_trip_with_unicode_line_separators(tmp_path: Path, char: str) -> None:
    from personae.persona import Persona, save_personas

    path = tmp_path / "u.jsonl"
    save_personas([Persona(name="Ana", summary=f"line{char}sep")], path)
    (back,) = load_personas(path)
    assert back.summary == f"line{char}sep"


def test_saved_files_get_normal_permissions_and_symlinks_survive(tmp_path: Path) -> None:
    import os

    from personae.persona import Persona, save_personas

    target = tmp_path / "real.yaml"
    link = tmp_path / "link.yaml"
    target.write_text("name: Old\n")
    link.symlink_to(target)
    old = os.umask(0o022)
    try:
        save_personas([Persona(name="New")], link)
    finally:
        os.umask(old)
    assert link.is_symlink() and load_personas(target)[0].name == "New"
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_cannot_write_is_an_input_error(tmp_path: Path) -> None:
    from personae.persona import Persona, save_personas

    blocker = tmp_path / "file.yaml"
    blocker.write_text("name: x\n")
    with pytest.raises(InputError, match="cannot write"):
        save_personas([Persona(name="A")], blocker / "inner.yaml")


def test_saved_file_does_not_carry_local_paths(tmp_path: Path, fixtures_dir: Path) -> None:
    from personae.persona import save_personas

    out = tmp_path / "lisa.yaml"
    save_personas(load_personas(fixtures_dir / "Lisa.agent.json"), out)
    text = out.read_text()
    assert str(fixtures_dir) not in text and "format: tinytroupe" in text


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("deep.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("deep.jsonl", "[" * 100_000 + "]" * 100_000 + "\n", "deep.jsonl:1: JSON nested too deeply"),
        ("src.yaml", "name: Ana\nsource: 5\n", "source must be a mapping"),
        ("tt.json", '{"type": "TinyPerson", "persona": {"name": "X", "personality": "nice"}}',
         "personality must be an object"),
        ("badid.yaml", "id: has spaces\nname: Ana\n", "id: must be 1-128 characters"),
    ],
)
def test_more_bad_shapes(tmp_path: Path, name: str, content: str, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        load_personas(write(tmp_path, name, content))


def test_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["name: Ana", "extra:", "  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"  a{i}: &a{i} [{refs}]")
    with pytest.raises(InputError, match="expands to .* values through aliases"):
        load_personas(write(tmp_path, "laughs.yaml", "\n".join(lines) + "\n"))


def test_no_such_file_without_extension_says_so(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_personas(tmp_path / "smaple")


def test_forced_format_wins_in_text_files(tmp_path: Path) -> None:
    path = write(tmp_path, "p.txt", "your persona: i ski.\nyour persona: i knit.\n")
    assert len(load_personas(path)) == 1
    assert len(load_personas(path, format="personagym")) == 2


def test_population_keeps_its_spec(tmp_path: Path) -> None:
    from personae.persona import load_population

    path = write(tmp_path, "crowd.yaml",
                 "spec: {seed: 7, quotas: {age: [18, 65]}}\nversion: 2\n"
                 "personas:\n  - name: Ana\n  - name: Bo\n")
    crowd = load_population(path)
    assert len(crowd) == 2 and crowd.spec == {"seed": 7, "quotas": {"age": [18, 65]}, "version": 2}
    multi = write(tmp_path, "multi.yaml", "name: Ana\n---\nname: Bo\n")
    assert load_population(multi).spec == {} and len(load_population(multi)) == 2


def _parquet(path: Path, rows: list[dict[str, object]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(dict.fromkeys(k for r in rows for k in r))  # from_pylist reads row 1's
    pq.write_table(pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows]), path)
    return path


def test_parquet_from_elsewhere(tmp_path: Path) -> None:
    # PersonaHub ships Parquet with a "persona" column: each row is converted on the way in.
    hub = _parquet(tmp_path / "hub.parquet", [{"persona": "A chemist.", "split": "x"},
                                              {"persona": "A pilot.", "split": "y"}])
    assert [p.summary for p in load_personas(hub)] == ["A chemist.", "A pilot."]
    # Struct columns and flat demographic columns work too; a null cell is a missing field.
    flat = _parquet(tmp_path / "flat.parquet",
                    [{"name": "Ana", "age": 34, "traits": {"openness": 4.0}},
                     {"name": "Bo", "age": None, "traits": None}])
    ana, bo = load_personas(flat)
    assert ana.demographics.age == 34 and ana.traits and ana.traits.openness == 4.0
    assert bo.demographics.age is None and bo.traits is None


@pytest.mark.parametrize(("rows", "needle"), [
    ([{"name": "Ana"}, {"name": "Bo", "demographics": "{oops"}],
     "bad.parquet: row 2: demographics: invalid JSON"),
    ([{"name": "Ana"}, {"name": "Bo", "trait": 3.0}],
     "bad.parquet: row 2: persona 'Bo': unknown field 'trait'; did you mean 'traits'?"),
    ([{"name": "Ana", "traits": '{"openness": 9}'}],
     "bad.parquet: row 1: persona 'Ana': traits.openness"),
])
def test_bad_parquet_rows_are_named(tmp_path: Path, rows: list[dict[str, object]],
                                    needle: str) -> None:
    with pytest.raises(InputError) as exc:
        load_personas(_parquet(tmp_path / "bad.parquet", rows))
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_parquet_keeps_nested_fields_as_json_text(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from personae.persona import Persona, save_personas

    path = save_personas([Persona(name="Ana", demographics={"age": 3, "pets": ["cat"]},
                                  extra={"k": {"deep": [1, None]}})], tmp_path / "p.parquet")
    table = pq.read_table(path)
    assert table.column("demographics").to_pylist() == ['{"age": 3, "pets": ["cat"]}']
    (back,) = load_personas(path)
    assert back.extra == {"k": {"deep": [1, None]}} and back.demographics.model_extra == {
        "pets": ["cat"]}
