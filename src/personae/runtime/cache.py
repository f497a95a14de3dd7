"""The content-addressed response cache: SQLite in WAL mode, one row per request key.

Keys come from `personae.models.base.request_key` (model identity, messages, every sampling
parameter, seed, sample index, conditioning). Only successful completions are stored: an
error is never cached, so a re-run retries it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from personae.errors import RunError
from personae.models.base import Completion
from personae.models.bundled import cache_dir

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    completion TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def default_cache_path() -> Path:
    return cache_dir() / "responses.sqlite3"


class ResponseCache:
    """A persistent map from request key to `Completion`.

    >>> cache = ResponseCache(":memory:")
    >>> cache.put("k", Completion(text="hi"), model="m")
    >>> cache.get("k").text
    'hi'
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else str(default_cache_path())
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # check_same_thread=False: the lock below serialises access from worker threads.
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise RunError(f"response cache {self.path}: {exc} (delete the file, or run with "
                           "--no-cache)") from None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute(
                "SELECT completion FROM responses WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return Completion.model_validate_json(row[0]).model_copy(update={"cached": True})

    def put(self, key: str, completion: Completion, *, model: str) -> None:
        blob = completion.model_copy(update={"cached": False}).model_dump_json()
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, model, completion, created) "
                "VALUES (?, ?, ?, ?)",
                (key, model, blob, time.time()),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
