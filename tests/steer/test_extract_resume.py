"""``personae steer extract`` killed (SIGKILL, Ctrl-C) in the middle of its responses, then
run again: it finishes with no repeated model call, and its vector equals an uninterrupted
run's.

Extraction keeps every response in the response cache (``responses.sqlite3`` in
``PERSONAE_CACHE_DIR``, one committed row per response as it completes), so that table is
its store. The model is called once per row; the count of calls is taken in the store
itself: after the kill a trigger logs every insert attempt into an ``attempts`` table, and
the cache writes a regenerated response as an insert (``INSERT OR REPLACE``, which would also
give the row a new ``created``). One response per generate call (``batch_size=1``): each is
stored the moment it is done, and greedy output does not depend on its batch-mates, so the
resumed run's responses and vector can be compared with an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import default_sigint, run_cli

pytestmark = pytest.mark.model

MODEL = "hf:bundled?batch_size=1"
TOTAL = 10  # 1 instruction pair × 5 questions × (pos, neg)
KILL_AT = 3  # responses stored when the run is killed


def _args(out: Path) -> list[str]:
    return ["steer", "extract", "--trait", "extroverted", "--model", MODEL,
            "--instructions", "1", "--questions", "5", "--max-tokens", "6", "--out", str(out)]


def _rows(db: Path) -> dict[str, tuple[float, str]]:
    """``{request key: (created, completion)}`` of the response cache."""
    with closing(sqlite3.connect(db, timeout=30)) as con:
        rows = con.execute("SELECT key, created, completion FROM responses").fetchall()
    return {key: (created, completion) for key, created, completion in rows}


def _count(db: Path) -> int:
    """Responses committed so far (0 while the file or its table does not exist yet)."""
    if not db.is_file():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
            return int(con.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _start(args: list[str], *, ctrl_c: bool = False) -> subprocess.Popen[str]:
    """The command in a child; with ``ctrl_c``, its streams piped and the default SIGINT
    handler set explicitly (a suite started as a background job ignores SIGINT, and
    children inherit that)."""
    if not ctrl_c:
        return subprocess.Popen([sys.executable, "-m", "personae", *args], text=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.Popen([sys.executable, "-m", "personae", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=default_sigint)


def _wait_for(proc: subprocess.Popen[str], db: Path, n: int, timeout: float = 300) -> set[str]:
    """Poll the store until it holds ``n`` responses (the first load of the bundled model
    in a session converts its weights: allow for that); their keys."""
    deadline = time.monotonic() + timeout
    while _count(db) < n:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, f"no {n} responses stored in {timeout:.0f} s"
        time.sleep(0.02)
    return set(_rows(db))


def _log_attempts(db: Path) -> None:
    """From now on, every response the cache is asked to store is logged in ``attempts``."""
    with closing(sqlite3.connect(db, timeout=30)) as con:
        con.executescript(
            "CREATE TABLE attempts (key TEXT NOT NULL);"
            "CREATE TRIGGER log_attempt BEFORE INSERT ON responses "
            "BEGIN INSERT INTO attempts VALUES (NEW.key); END;")


def _attempts(db: Path) -> list[str]:
    with closing(sqlite3.connect(db, timeout=30)) as con:
        return sorted(k for (k,) in con.execute("SELECT key FROM attempts"))


def _check_resumed(db: Path, before: dict[str, tuple[float, str]], out: Path) -> None:
    """The re-run after the kill: finished, every stored response untouched, every missing
    one generated exactly once."""
    again = run_cli(*_args(out))
    assert again.returncode == 0, again.stderr
    assert out.is_file()
    after = _rows(db)
    assert len(after) == TOTAL and set(before) <= set(after)
    assert {k: after[k] for k in before} == before  # same row, same `created`: not redone
    assert _attempts(db) == sorted(set(after) - set(before))  # the rest, once each


def test_sigkill_then_same_command_resumes_with_no_repeated_call_and_the_same_vector(
        tmp_path: Path, isolated_cache: Path) -> None:
    from personae.vectors.file import load_vector

    db = isolated_cache / "responses.sqlite3"
    out = tmp_path / "extroverted.safetensors"
    proc = _start(_args(out))
    try:
        seen = _wait_for(proc, db, KILL_AT)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    before = _rows(db)
    assert seen <= set(before) and len(before) < TOTAL  # every completed response kept
    assert not out.exists()
    _log_attempts(db)
    _check_resumed(db, before, out)

    # An uninterrupted run, in a cache of its own: the same responses, the same vector.
    ref_cache = tmp_path / "ref-cache"
    ref_cache.mkdir()
    (ref_cache / "hf").symlink_to((isolated_cache / "hf").resolve(), target_is_directory=True)
    ref_out = tmp_path / "ref.safetensors"
    ref = run_cli(*_args(ref_out), env={"PERSONAE_CACHE_DIR": str(ref_cache)})
    assert ref.returncode == 0, ref.stderr

    def texts(rows: dict[str, tuple[float, str]]) -> dict[str, str]:
        return {k: json.loads(c)["text"] for k, (_, c) in rows.items()}

    assert texts(_rows(ref_cache / "responses.sqlite3")) == texts(_rows(db))
    got, want = load_vector(out), load_vector(ref_out)
    np.testing.assert_allclose(got.vectors, want.vectors, rtol=1e-5, atol=1e-6)
    assert got.meta.n_pairs == want.meta.n_pairs == TOTAL // 2


def test_ctrl_c_exits_130_in_one_line_keeps_the_responses_and_resumes(
        tmp_path: Path, isolated_cache: Path) -> None:
    db = isolated_cache / "responses.sqlite3"
    out = tmp_path / "extroverted.safetensors"
    proc = _start(_args(out), ctrl_c=True)
    try:
        seen = _wait_for(proc, db, KILL_AT)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    # One line, the last, says what happened (before it: progress, and the notice of the
    # first-time weight conversion when this test is the session's first to load the model).
    *earlier, last = stderr.strip().splitlines()
    assert last.startswith("personae: interrupted") and "resume" in last, stderr
    assert not [line for line in earlier if line.startswith("personae: ")
                and not line.startswith("personae: converting")], stderr
    assert stdout == ""
    assert not out.exists()  # no vector from part of the responses
    before = _rows(db)
    assert seen <= set(before) and len(before) < TOTAL
    _log_attempts(db)
    _check_resumed(db, before, out)
