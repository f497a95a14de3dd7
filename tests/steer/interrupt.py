"""Helpers for the tests that interrupt a ``personae`` command (SIGKILL, Ctrl-C) part way
through and run it again: they watch the SQLite table the command stores its units in
(``table``, whose rows are told apart by the ``keys`` columns), count the model calls of the
resumed run with a trigger, and check the message of an interrupted run.

A row's key is always a tuple of its ``keys`` columns, even of one.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import default_sigint

Key = tuple[Any, ...]


def count(db: Path, table: str) -> int:
    """Rows of ``table`` committed so far (0 while the file or its table does not exist
    yet)."""
    if not db.is_file():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
            return int(con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def rows(db: Path, table: str, keys: Sequence[str],
         values: Sequence[str] = ()) -> dict[Key, tuple[Any, ...]]:
    """``{key: values}`` of every row of ``table``."""
    with closing(sqlite3.connect(db, timeout=30)) as con:
        got = con.execute(f"SELECT {', '.join([*keys, *values])} FROM {table}").fetchall()
    return {tuple(row[:len(keys)]): tuple(row[len(keys):]) for row in got}


@contextmanager
def running(args: Sequence[str], *, ctrl_c: bool = False) -> Iterator[subprocess.Popen[str]]:
    """``python -m personae ARGS`` in a child, killed on the way out if still running; with
    ``ctrl_c``, its streams piped and the default SIGINT handler set explicitly (a suite
    started as a background job ignores SIGINT, and children inherit that)."""
    if ctrl_c:
        streams: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE,
                                   "preexec_fn": default_sigint}
    else:
        streams = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    proc = subprocess.Popen([sys.executable, "-m", "personae", *args], text=True, **streams)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def wait_for(proc: subprocess.Popen[str], db: Path, table: str, keys: Sequence[str], n: int,
             timeout: float = 300) -> set[Key]:
    """Poll ``table`` until it holds ``n`` rows (the first load of the bundled model in a
    session converts its weights: allow for that); their keys."""
    deadline = time.monotonic() + timeout
    while count(db, table) < n:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, f"no {n} {table} stored in {timeout:.0f} s"
        time.sleep(0.02)
    return set(rows(db, table, keys))


def sigkill_at(args: Sequence[str], db: Path, table: str, keys: Sequence[str],
               n: int) -> set[Key]:
    """Run the command and SIGKILL it once ``table`` holds ``n`` rows; the keys seen then."""
    with running(args) as proc:
        seen = wait_for(proc, db, table, keys, n)
        os.kill(proc.pid, signal.SIGKILL)
    return seen


def ctrl_c_at(args: Sequence[str], db: Path, table: str, keys: Sequence[str],
              n: int) -> tuple[set[Key], subprocess.CompletedProcess[str]]:
    """Run the command and send it SIGINT (Ctrl-C) once ``table`` holds ``n`` rows; the keys
    seen then, and how the command ended (exit code, stdout, stderr)."""
    with running(args, ctrl_c=True) as proc:
        seen = wait_for(proc, db, table, keys, n)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    return seen, subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def assert_interrupted(proc: subprocess.CompletedProcess[str]) -> None:
    """Ctrl-C ended the command with exit 130, no traceback, nothing on stdout, and one line,
    the last, that says so and how to resume. Before it: progress, and the notice of the
    first-time weight conversion when the test is the session's first to load the model."""
    stderr = proc.stderr
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    *earlier, last = stderr.strip().splitlines()
    assert last.startswith("personae: interrupted") and "resume" in last, stderr
    assert not [line for line in earlier if line.startswith("personae: ")
                and not line.startswith("personae: converting")], stderr
    assert proc.stdout == ""


def log_attempts(db: Path, table: str, keys: Sequence[str]) -> None:
    """From now on, every row the command asks ``table`` to store is logged (its key) in an
    ``attempts`` table, even one an ``INSERT OR IGNORE`` drops or an ``INSERT OR REPLACE``
    rewrites."""
    columns = ", ".join(f"{k} TEXT NOT NULL" for k in keys)
    new = ", ".join(f"NEW.{k}" for k in keys)
    with closing(sqlite3.connect(db, timeout=30)) as con:
        con.executescript(
            f"CREATE TABLE attempts ({columns});"
            f"CREATE TRIGGER log_attempt BEFORE INSERT ON {table} "
            f"BEGIN INSERT INTO attempts VALUES ({new}); END;")


def attempts(db: Path, keys: Sequence[str]) -> list[Key]:
    """The keys logged in ``attempts`` since :func:`log_attempts`, sorted."""
    with closing(sqlite3.connect(db, timeout=30)) as con:
        return sorted(con.execute(f"SELECT {', '.join(keys)} FROM attempts").fetchall())


def assert_kept(seen: set[Key], before: dict[Key, Any], total: int) -> None:
    """After the interruption: every row seen stored is still there, and the run is
    unfinished."""
    assert seen <= set(before) and len(before) < total


def assert_resumed(db: Path, keys: Sequence[str], before: dict[Key, Any],
                   after: dict[Key, Any], total: int) -> None:
    """The re-run (with :func:`log_attempts` set before it) finished: every row stored before
    it untouched (same values, same ``created``: not redone), every missing one made exactly
    once, no call for a stored one."""
    assert len(after) == total and set(before) <= set(after)
    assert {k: after[k] for k in before} == before
    assert attempts(db, keys) == sorted(set(after) - set(before))
