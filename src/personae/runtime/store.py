"""The run store: one SQLite file per run directory holding every completed record.

A record is written (and committed) the moment its model call completes, before more work is
scheduled, and keyed by what produced it (persona, probe, condition, judge, variant...). A
killed run therefore loses at most the calls that were in flight, and re-running the same
command skips every key already stored: nothing is lost, nothing is stored twice.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from personae._files import atomic_write
from personae.errors import InputError, RunError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (kind, key)
);
"""

STORE_FILE = "run.sqlite3"
# A record's key: the parts naming what produced it, e.g. (probe id, condition, sample).
Key = tuple[str | int, ...]
# The layout of the store itself. 1: records and config only (before 2026-12); 2: the store
# also records the kind of run it holds and its extent (see `_add_kind_and_extent`). Older
# stores are migrated when opened.
STORE_VERSION = 2


def encode_key(key: Key | str) -> str:
    """A key as stored: its parts joined by ``|`` (the encoding of every layout so far, so
    stored runs resume). One-way: what a record is about is read from its fields.

    >>> encode_key(("ana|1", "persona", 0))
    'ana|1|persona|0'
    """
    return key if isinstance(key, str) else "|".join(str(part) for part in key)


class StoredKeys(frozenset[str]):
    """The stored key texts of one record kind, tested with typed keys as well."""

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str | tuple) and super().__contains__(encode_key(key))


class RunStore:
    """Append-only records of one run, by kind and key.

    Keys are tuples (`Key`); a record's fields say what it is about, so a key is never
    parsed back.

    >>> import tempfile
    >>> store = RunStore(tempfile.mkdtemp())
    >>> store.put("response", ("p1", "q1"), {"text": "hi"})
    True
    >>> store.put("response", ("p1", "q1"), {"text": "again"})  # already there: kept
    False
    >>> store.get("response", ("p1", "q1")), ("p1", "q1") in store.keys("response")
    ({'text': 'hi'}, True)
    """

    def __init__(self, run_dir: str | Path, kind: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"run directory {self.run_dir}: {exc.strerror or exc}") from None
        self.path = self.run_dir / STORE_FILE
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            # A commit survives the process being killed at any point; only a power cut can
            # lose the last few (WAL with synchronous=NORMAL skips the fsync per commit).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a personae run store ({exc})") from None
        self._lock = threading.Lock()
        self._migrate()
        if kind is not None:
            self._bind_kind(kind)

    # -- layout and kind -----------------------------------------------------------------
    @property
    def kind(self) -> str | None:
        """The kind of run stored here (``eval``, ``survey``...), None for a store not yet
        used by a run."""
        return self.get_meta("kind")

    def _migrate(self) -> None:
        version = int(self.get_meta("store_version") or 0)
        if version == 0:
            # No version: a new store, or one written by layout 1 (it has a config).
            version = 1 if self.get_meta("config") is not None else STORE_VERSION
        if version > STORE_VERSION:
            raise InputError(f"{self.run_dir}: written by a newer personae (store layout "
                             f"{version}, this one reads up to {STORE_VERSION}); upgrade "
                             "personae")
        if version == STORE_VERSION and self.get_meta("store_version") is not None:
            return  # current: opening writes nothing
        for step in MIGRATIONS[version - 1:]:
            step(self)
        self.set_meta("store_version", str(STORE_VERSION))

    def _bind_kind(self, kind: str) -> None:
        stored = self.kind
        if stored is None:
            self.set_meta("kind", kind)
        elif stored != kind:
            raise InputError(f"{self.run_dir} holds a {stored} run, not a {kind} run; pass "
                             "another --out")

    # -- configuration -------------------------------------------------------------------
    def bind_config(self, config: Mapping[str, Any]) -> None:
        """Record the run's identifying settings, or check they match the stored ones.

        Resuming with other settings would mix records of two different runs in one report.
        """
        blob = json.dumps(config, sort_keys=True)
        stored = self.get_meta("config")
        if stored is None:
            self.set_meta("config", blob)
            self.set_meta("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            return
        old = json.loads(stored)
        changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
        if changed:
            raise InputError(
                f"{self.run_dir} holds a run with other settings ({', '.join(changed)} differ); "
                "re-run with the same settings to resume, or pass another --out"
            )

    def config(self) -> dict[str, Any]:
        stored = self.get_meta("config")
        if stored is None:
            raise InputError(f"{self.run_dir}: no run found here")
        return dict(json.loads(stored))

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- records -------------------------------------------------------------------------
    def put(self, kind: str, key: Key | str, data: Mapping[str, Any]) -> bool:
        """Store a record; returns False (and keeps the first) if the key is already there."""
        blob = json.dumps(data, ensure_ascii=False)
        key = encode_key(key)
        try:
            with self._lock, self._db:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO records (kind, key, data, created) VALUES (?, ?, ?, ?)",
                    (kind, key, blob, time.time()),
                )
        except sqlite3.DatabaseError as exc:
            raise RunError(f"run store {self.path}: {exc}") from None
        return cur.rowcount == 1

    def get(self, kind: str, key: Key | str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM records WHERE kind = ? AND key = ?", (kind, encode_key(key))
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def keys(self, kind: str) -> StoredKeys:
        """The keys stored for ``kind``, to test typed keys against (``key in keys``)."""
        with self._lock:
            rows = self._db.execute("SELECT key FROM records WHERE kind = ?", (kind,)).fetchall()
        return StoredKeys(str(r[0]) for r in rows)

    def items(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(stored key text, record) pairs in the order they were stored."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, data FROM records WHERE kind = ? ORDER BY rowid", (kind,)
            ).fetchall()
        for key, data in rows:
            yield str(key), dict(json.loads(data))

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, COUNT(*) FROM records GROUP BY kind ORDER BY kind"
            ).fetchall()
        return {str(k): int(n) for k, n in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- export --------------------------------------------------------------------------
    def export(self, out_dir: str | Path, fmt: str = "jsonl") -> list[Path]:
        """Write one file per record kind (``response.jsonl``, ``judgement.parquet``...)."""
        if fmt not in ("jsonl", "parquet"):
            raise InputError(f"export format {fmt!r}: use jsonl or parquet")
        written = []
        for kind in self.counts():
            rows = [{"key": key, **data} for key, data in self.items(kind)]
            path = Path(out_dir) / f"{kind}.{fmt}"
            if fmt == "jsonl":
                atomic_write(path, "".join(json.dumps(row, ensure_ascii=False) + "\n"
                                           for row in rows))
            else:
                atomic_write(path, _parquet_bytes(rows))
            written.append(path)
        return written


def _kind_of_layout_1(config: Mapping[str, Any]) -> str | None:
    """Which command wrote a layout-1 store, from the settings it kept (each kind's
    settings have fields no other kind has)."""
    if "judges" in config:
        return "eval"
    if "coefficients" in config:
        return "sweep"
    if "instrument" in config and "variants" in config:
        return "survey"
    if "user_script" in config and "window" in config:
        return "simulate"
    return None


def _add_kind_and_extent(store: RunStore) -> None:
    """Layout 1 → 2: record the kind of run, and its extent (the settings that say how much
    of it was asked for, such as ``limit``, which its identity leaves out). Layout 1 kept
    the extent only in the state its summary was written from: a survey's
    ``[counts, items, limit]``, a simulation's ``[counts, limit]``; an eval reads its extent
    from its probes and a sweep has none."""
    kind = _kind_of_layout_1(store.config())
    if kind is None or store.kind is not None:
        return
    store.set_meta("kind", kind)
    state = json.loads(store.get_meta("summarised") or "null")
    extent: dict[str, Any] = {}
    if kind == "survey" and isinstance(state, list) and len(state) == 3:
        extent = {"items": state[1], "limit": state[2]}
    elif kind == "simulate" and isinstance(state, list) and len(state) == 2:
        extent = {"limit": state[1]}
    store.set_meta("extent", json.dumps(extent))


# MIGRATIONS[i] turns a layout-(i+1) store into layout i+2; a store is taken through every
# step from its own layout on, in order.
MIGRATIONS: tuple[Callable[[RunStore], None], ...] = (_add_kind_and_extent,)
assert len(MIGRATIONS) == STORE_VERSION - 1


def open_store(run_dir: str | Path) -> RunStore:
    """The store of an existing run directory (of any command), or a one-line error."""
    path = Path(run_dir)
    if not (path / STORE_FILE).is_file():
        raise InputError(f"{path}: not a personae run directory (no {STORE_FILE})")
    return RunStore(path)


def _parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Nested values (lists of probabilities, option lists) go in as JSON text: their shapes
    # vary between records and Arrow wants one type per column.
    flat = [{k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
            for row in rows]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(flat), sink)
    return bytes(sink.getvalue())
