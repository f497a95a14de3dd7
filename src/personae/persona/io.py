"""Load and save personas: YAML, JSON, JSONL, Parquet, plain-text one-liner lists, and
character cards (JSON or PNG; see `personae.persona.cards`).

In Parquet, one row is one persona: the text fields and lists are columns of their own, and
the nested fields (demographics, traits, extra, source) are JSON text, so that free-form keys
round-trip exactly (struct columns would turn every key missing from a row into a null).

Every error names the file and, where it can, the line, and says what is wrong with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from personae._files import atomic_write
from personae.errors import InputError, describe_validation
from personae.persona.cards import read_card_png, save_card
from personae.persona.importers import FORMATS, IMPORTERS, FormatError, detect_format
from personae.persona.schema import Persona, Population

_MAX_YAML_NODES = 1_000_000
_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".jsonl": "jsonl",
             ".ndjson": "jsonl", ".txt": "txt", ".parquet": "parquet", ".png": "png"}
_READABLE = ".yaml, .yml, .json, .jsonl, .txt, .parquet or .png (a character card)"
# Parquet columns holding JSON text: nested fields whose keys vary from persona to persona.
_JSON_COLUMNS = ("demographics", "traits", "extra", "source")
_PARQUET_NOTE = b"one persona per row; demographics, traits, extra and source are JSON text"


@dataclass(frozen=True)
class _Record:
    data: Any
    line: int | None  # 1-based line in the file, where known
    index: int  # 0-based position among the file's records
    label: str | None = None  # where in the file, when there are no lines ("row 3")


def load_personas(path: str | os.PathLike[str], *, format: str = "auto") -> list[Persona]:
    """Read every persona in a file, converting from its format.

    ``format`` is ``"auto"`` (decide per record from its shape) or one of `FORMATS`
    (``personae, personagym, personahub, personachat, tinytroupe``, the character card
    specs ``chara_card_v1``, ``chara_card_v2``, ``chara_card_v3``).

    Example::

        personas = load_personas("team.yaml")
        tinytroupe = load_personas("Lisa.agent.json")  # converted on the way in
        seraphina = load_personas("Seraphina.png")  # a character card in a PNG
    """
    path = Path(path)
    if format != "auto" and format not in FORMATS:
        raise InputError(f"unknown persona format {format!r}; expected one of: auto, "
                         + ", ".join(FORMATS))
    records = _read_records(path, format)
    personas: list[Persona] = []
    first_line: dict[str, str] = {}
    for rec in records:
        where = _where(path, rec)
        fmt = format if format != "auto" else _detect(rec, where)
        try:
            fields = IMPORTERS[fmt](rec.data)
        except FormatError as exc:
            raise InputError(f"{where}: not a valid {fmt} persona: {exc}") from None
        if not isinstance(fields.get("source") or {}, dict):
            raise InputError(f"{where}: source must be a mapping (format, path, upstream...)")
        source = dict(fields.get("source") or {})
        source.setdefault("format", fmt)
        source.update(path=str(path), line=rec.line)
        fields["source"] = source
        try:
            persona = Persona.model_validate(fields)
        except ValidationError as exc:
            raise InputError(f"{where}: {_describe_validation(exc, fields)}") from None
        if persona.id in first_line:
            raise InputError(f"{where}: duplicate persona id {persona.id!r} "
                             f"(first at {first_line[persona.id]})")
        first_line[persona.id] = where
        personas.append(persona)
    return personas


def load_population(path: str | os.PathLike[str], *, format: str = "auto") -> Population:
    """Personas plus the spec of a ``{personas: [...], spec: {...}}`` file (or any other
    top-level keys next to ``personas``, e.g. PersonaGym's ``source``), kept as the spec.

    Example::

        crowd = load_population("crowd.yaml")
        crowd.spec["seed"], len(crowd)
    """
    path = Path(path)
    personas = load_personas(path, format=format)
    spec: dict[str, Any] = {}
    if _SUFFIXES.get(path.suffix.lower()) in ("json", "yaml"):
        text = _read_text(path)
        docs = [json.loads(text)] if path.suffix.lower() == ".json" \
            else list(yaml.safe_load_all(text))
        top = docs[0] if len(docs) == 1 else None
        if isinstance(top, dict) and isinstance(top.get("personas"), list):
            spec = dict(top.get("spec") or {}) | {
                k: v for k, v in top.items() if k not in ("personas", "spec")}
    return Population(personas=personas, spec=spec)


def save_personas(personas: Iterable[Persona], path: str | os.PathLike[str]) -> Path:
    """Write personas in the format the file's extension names: .yaml, .json, .jsonl,
    .parquet, or ``.card.json`` (one persona as a Character Card V2).

    The file is replaced atomically, so a crash never leaves half a file.

    Example::

        save_personas(load_personas("Lisa.agent.json"), "lisa.yaml")
    """
    path = Path(path)
    personas = list(personas)
    if path.name.lower().endswith(".card.json"):
        if len(personas) != 1:
            raise InputError(f"{path}: a character card holds one persona, not "
                             f"{len(personas)}")
        return save_card(personas[0], path)
    kind = _SUFFIXES.get(path.suffix.lower())
    # Where a persona was read from (local path, line) means nothing in the new file.
    rows = [p.model_dump(mode="json", exclude_none=True, exclude_defaults=True,
                         exclude={"source": {"path", "line"}}) | {"id": p.id}
            for p in personas]
    for row in rows:
        # The default format is left out by exclude_defaults: a native persona's source
        # comes out empty, and says nothing.
        if row.get("source") in ({}, {"format": "personae"}):
            del row["source"]
    if kind == "yaml":
        text = yaml.safe_dump(rows, sort_keys=False, allow_unicode=True, width=100)
    elif kind == "json":
        text = json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    elif kind == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    elif kind == "parquet":
        return atomic_write(path, _parquet_bytes(rows))
    else:
        what = path.suffix or "a file without an extension"
        raise InputError(f"{path}: cannot write personas as {what}; use .yaml, .json, .jsonl, "
                         ".parquet or .card.json")
    atomic_write(path, text)
    return path


def _parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    # pyarrow takes 0.2 s to import: only Parquet files pay for it.
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [f for f in Persona.model_fields if any(f in r for r in rows)]
    table = pa.Table.from_pylist([
        {c: json.dumps(r[c], ensure_ascii=False) if c in _JSON_COLUMNS and c in r
         else r.get(c) for c in columns} for r in rows])
    table = table.replace_schema_metadata({b"personae": _PARQUET_NOTE})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def _where(path: Path, rec: _Record) -> str:
    if rec.line:
        return f"{path}:{rec.line}"
    return f"{path}: {rec.label or f'persona #{rec.index + 1}'}"


def _detect(rec: _Record, where: str) -> str:
    try:
        return detect_format(rec.data)
    except FormatError as exc:
        raise InputError(f"{where}: {exc}") from None


def _describe_validation(exc: ValidationError, fields: dict[str, Any]) -> str:
    label = fields.get("id") or fields.get("name")
    prefix = f"persona {label!r}: " if label else ""
    text = describe_validation(exc, whole="persona")
    if not exc.errors()[0]["loc"]:  # about the whole persona (an unknown key...): no field
        text = text.removeprefix("persona: ")
    return prefix + text


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file (bundled sets: sample, personagym)")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a persona file")


def _read_text(path: Path) -> str:
    _check_file(path)
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise InputError(f"{path}: binary file, expected YAML, JSON, JSONL or text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from None
    if not text.strip():
        raise InputError(f"{path}: file is empty, expected at least one persona")
    return text


def _read_records(path: Path, format: str) -> list[_Record]:
    _check_file(path)  # first: "no such file" beats "unsupported type" for typos
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"{path}: unsupported file type {path.suffix or '(no extension)'!r}; "
                         f"use {_READABLE}")
    if kind == "png":  # binary: the card is in a text chunk
        chunk, card = read_card_png(path)
        return [_Record(card, None, 0, f"chunk {chunk!r}")]
    if kind == "parquet":
        return _parquet_records(path)
    text = _read_text(path)
    if kind == "jsonl":
        return _jsonl_records(path, text)
    if kind == "txt":
        return _text_records(text, format)
    if kind == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg} "
                             f"(column {exc.colno})") from None
        except RecursionError:
            raise InputError(f"{path}: JSON nested too deeply") from None
        return _top_level_records(path, data, None, format)
    return _yaml_records(path, text, format)


def _parquet_records(path: Path) -> list[_Record]:
    import pyarrow as pa  # lazy, as in _parquet_bytes
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a readable Parquet file ({first})") from None
    if not rows:
        raise InputError(f"{path}: no personas in file")
    records: list[_Record] = []
    for i, row in enumerate(rows):
        # A null cell is a field the persona does not have (columns are shared by all rows).
        data = {k: v for k, v in row.items() if v is not None}
        for column in _JSON_COLUMNS:
            if isinstance(data.get(column), str):
                try:
                    data[column] = json.loads(data[column])
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}: row {i + 1}: {column}: invalid JSON: "
                                     f"{exc.msg} (column {exc.colno})") from None
                except RecursionError:
                    raise InputError(f"{path}: row {i + 1}: {column}: JSON nested too "
                                     "deeply") from None
        records.append(_Record(data, None, i, f"row {i + 1}"))
    return records


def _jsonl_records(path: Path, text: str) -> list[_Record]:
    records = []
    # Split on "\n" only: str.splitlines() also breaks at U+2028, U+0085 and friends, which
    # json.dumps(ensure_ascii=False) leaves inside strings.
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append(_Record(json.loads(line), lineno, len(records)))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{lineno}: invalid JSON: {exc.msg} "
                             f"(column {exc.colno})") from None
        except RecursionError:
            raise InputError(f"{path}:{lineno}: JSON nested too deeply") from None
    return records


def _text_records(text: str, format: str) -> list[_Record]:
    lines = [(n, ln.strip()) for n, ln in enumerate(text.split("\n"), start=1) if ln.strip()]
    if format == "personachat" or (format == "auto"
                                   and detect_format(lines[0][1]) == "personachat"):
        return [_Record([ln for _, ln in lines], lines[0][0], 0)]
    return [_Record(ln, n, i) for i, (n, ln) in enumerate(lines)]


def _yaml_records(path: Path, text: str, format: str) -> list[_Record]:
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        # A few hundred bytes of nested aliases can expand to gigabytes ("billion laughs"):
        # measure the expanded size on the node graph before building any Python objects.
        size = sum(_expanded_size(n, {}) for n in nodes)
        if size > _MAX_YAML_NODES:
            raise InputError(f"{path}: YAML expands to {size:,} values through aliases "
                             f"(limit {_MAX_YAML_NODES:,})")
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{path}{line}: invalid YAML: {problem}") from None
    except RecursionError:
        raise InputError(f"{path}: YAML nested too deeply") from None
    pairs = [(d, n) for d, n in zip(docs, nodes, strict=True) if d is not None]
    if not pairs:
        raise InputError(f"{path}: no personas in file")
    if len(pairs) > 1:  # multi-document YAML: one persona per document
        return [_Record(d, n.start_mark.line + 1, i) for i, (d, n) in enumerate(pairs)]
    return _top_level_records(path, pairs[0][0], pairs[0][1], format)


def _top_level_records(path: Path, data: Any, node: Any, format: str) -> list[_Record]:
    """Unwrap a file's top level: one persona, a list of them, or ``{"personas": [...]}``."""
    items_node = node
    if isinstance(data, dict) and isinstance(data.get("personas"), list):
        data = data["personas"]
        items_node = _mapping_value(node, "personas")
    if isinstance(data, list):
        if format == "personachat" and all(isinstance(x, str) for x in data):
            return [_Record(data, _line(node), 0)]
        if not data:
            raise InputError(f"{path}: the persona list is empty")
        lines = _item_lines(items_node, len(data))
        return [_Record(d, lines[i], i) for i, d in enumerate(data)]
    if isinstance(data, dict | str):
        return [_Record(data, _line(node), 0)]
    raise InputError(f"{path}: expected a persona, a list of personas or "
                     f"{{personas: [...]}}, got {type(data).__name__}")


def _expanded_size(node: Any, memo: dict[int, int]) -> int:
    """How many values a node stands for once every alias is expanded (memoised per node)."""
    key = id(node)
    if key not in memo:
        memo[key] = 0  # a cycle counts once instead of recursing forever
        if isinstance(node, yaml.SequenceNode):
            memo[key] = 1 + sum(_expanded_size(c, memo) for c in node.value)
        elif isinstance(node, yaml.MappingNode):
            memo[key] = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo)
                                for k, v in node.value)
        else:
            memo[key] = 1
    return memo[key]


def _line(node: Any) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def _mapping_value(node: Any, key: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if getattr(k, "value", None) == key:
                return v
    return None


def _item_lines(node: Any, n: int) -> Sequence[int | None]:
    if isinstance(node, yaml.SequenceNode) and len(node.value) == n:
        return [item.start_mark.line + 1 for item in node.value]
    return [None] * n
