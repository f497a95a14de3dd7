"""``personae steer sweep`` killed (SIGKILL, Ctrl-C) in the middle of its coefficients, then
run again: it finishes with no repeated model call, and its records equal an uninterrupted
run's.

Every unit of a sweep is one record in its run store (``run.sqlite3``), written as the model
call that made it completes: a steered response, an instrument item, the unsteered read-out
(measure) of a response. The count of calls is taken in the store itself: after the kill a
trigger logs every record the resumed run asks to store (the store keeps the first of two
puts of a key, so a repeated call would leave no other trace). One response per generate
call (``batch_size=1``): greedy output then does not depend on its batch-mates, so the
resumed records can be compared with an uninterrupted run's.

Only the store, the exit code and stderr are checked: the sweep's output files are not.
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

from personae.vectors.file import PersonaVector
from tests.conftest import default_sigint, run_cli

pytestmark = pytest.mark.model

MODEL = "hf:bundled?batch_size=1"
COEFFICIENTS = 3  # -0.2, 0, 0.2
QUESTIONS = ITEMS = 2
# Per coefficient: a response per question, an item answer per item, a measure per response.
TOTAL = COEFFICIENTS * (QUESTIONS + ITEMS + QUESTIONS)
KILL_AT = 3  # records stored when the run is killed: in the first coefficient or the second

Record = tuple[str, str]  # (kind, key)


@pytest.fixture
def vector(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    vec = PersonaVector.from_array(rng.standard_normal((30, 576)).astype(np.float32),
                                   trait="extroverted", model="test", position="response_avg",
                                   method="mean_diff", residual_norms=[100.0] * 30)
    return vec.save(tmp_path / "rand.safetensors")


def _args(vector: Path, run: Path) -> list[str]:
    return ["steer", "sweep", "-v", str(vector), "-l", "10", "--k", "0.2",
            "--steps", str(COEFFICIENTS), "--questions", str(QUESTIONS), "--items", str(ITEMS),
            "--max-tokens", "8", "--model", MODEL, "-o", str(run)]


def _records(db: Path) -> dict[Record, tuple[float, str]]:
    """``{(kind, key): (created, data)}`` of the run store."""
    with closing(sqlite3.connect(db, timeout=30)) as con:
        rows = con.execute("SELECT kind, key, created, data FROM records").fetchall()
    return {(kind, key): (created, data) for kind, key, created, data in rows}


def _count(db: Path) -> int:
    """Records committed so far (0 while the file or its table does not exist yet)."""
    if not db.is_file():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
            return int(con.execute("SELECT COUNT(*) FROM records").fetchone()[0])
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


def _wait_for(proc: subprocess.Popen[str], db: Path, n: int,
              timeout: float = 300) -> set[Record]:
    """Poll the store until it holds ``n`` records (the first load of the bundled model in a
    session converts its weights: allow for that); their keys."""
    deadline = time.monotonic() + timeout
    while _count(db) < n:
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        assert time.monotonic() < deadline, f"no {n} records stored in {timeout:.0f} s"
        time.sleep(0.02)
    return set(_records(db))


def _log_attempts(db: Path) -> None:
    """From now on, every record the store is asked to keep is logged in ``attempts``, even
    one it ignores because its key is already there."""
    with closing(sqlite3.connect(db, timeout=30)) as con:
        con.executescript(
            "CREATE TABLE attempts (kind TEXT NOT NULL, key TEXT NOT NULL);"
            "CREATE TRIGGER log_attempt BEFORE INSERT ON records "
            "BEGIN INSERT INTO attempts VALUES (NEW.kind, NEW.key); END;")


def _attempts(db: Path) -> list[Record]:
    with closing(sqlite3.connect(db, timeout=30)) as con:
        return sorted(con.execute("SELECT kind, key FROM attempts").fetchall())


def _resume(args: list[str], db: Path, before: dict[Record, tuple[float, str]]
            ) -> dict[Record, tuple[float, str]]:
    """The re-run after the kill: finished, every stored record untouched, every missing one
    made exactly once. Returns the finished store's records."""
    _log_attempts(db)
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    after = _records(db)
    kinds = sorted({kind for kind, _ in after})
    assert kinds == ["item", "measure", "response"], kinds
    assert len(after) == TOTAL and set(before) <= set(after)
    assert {k: after[k] for k in before} == before  # same data, same `created`
    assert _attempts(db) == sorted(set(after) - set(before))  # no call for a stored record
    return after


def test_sigkill_then_same_command_resumes_with_no_repeated_call_and_the_same_records(
        tmp_path: Path, vector: Path) -> None:
    run = tmp_path / "run"
    db = run / "run.sqlite3"
    args = _args(vector, run)
    proc = _start(args)
    try:
        seen = _wait_for(proc, db, KILL_AT)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    before = _records(db)
    assert seen <= set(before) and len(before) < TOTAL  # every completed record kept
    after = _resume(args, db, before)

    # An uninterrupted sweep: the same records (greedy responses word for word).
    ref_run = tmp_path / "ref"
    ref = run_cli(*_args(vector, ref_run))
    assert ref.returncode == 0, ref.stderr
    want = {k: json.loads(d) for k, (_, d) in _records(ref_run / "run.sqlite3").items()}
    got = {k: json.loads(d) for k, (_, d) in after.items()}
    assert set(got) == set(want)
    for key, record in want.items():
        assert got[key] == pytest.approx(record, rel=1e-5, abs=1e-6), key


def test_ctrl_c_exits_130_in_one_line_keeps_the_records_and_resumes(
        tmp_path: Path, vector: Path) -> None:
    run = tmp_path / "run"
    db = run / "run.sqlite3"
    args = _args(vector, run)
    proc = _start(args, ctrl_c=True)
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
    before = _records(db)
    assert seen <= set(before) and len(before) < TOTAL
    _resume(args, db, before)
