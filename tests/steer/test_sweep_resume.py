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
from pathlib import Path

import numpy as np
import pytest

from personae.vectors.file import PersonaVector
from tests.conftest import run_cli
from tests.steer import interrupt

pytestmark = pytest.mark.model

MODEL = "hf:bundled?batch_size=1"
COEFFICIENTS = 3  # -0.2, 0, 0.2
QUESTIONS = ITEMS = 2
# Per coefficient: a response per question, an item answer per item, a measure per response.
TOTAL = COEFFICIENTS * (QUESTIONS + ITEMS + QUESTIONS)
KILL_AT = 3  # records stored when the run is killed: in the first coefficient or the second
TABLE, KEYS = "records", ("kind", "key")  # the run store's table, one row per (kind, key)

Records = dict[interrupt.Key, tuple[float, str]]


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


def _records(db: Path) -> Records:
    """``{(kind, key): (created, data)}`` of the run store."""
    return interrupt.rows(db, TABLE, KEYS, ("created", "data"))


def _resume(args: list[str], db: Path, before: Records) -> Records:
    """The re-run after the kill: finished, every stored record untouched, every missing one
    made exactly once (the store keeps the first of two puts of a key, so the trigger also
    logs a record it ignores). Returns the finished store's records."""
    interrupt.log_attempts(db, TABLE, KEYS)
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    after = _records(db)
    kinds = sorted({kind for kind, _ in after})
    assert kinds == ["item", "measure", "response"], kinds
    interrupt.assert_resumed(db, KEYS, before, after, TOTAL)
    return after


def test_sigkill_then_same_command_resumes_with_no_repeated_call_and_the_same_records(
        tmp_path: Path, vector: Path) -> None:
    run = tmp_path / "run"
    db = run / "run.sqlite3"
    args = _args(vector, run)
    seen = interrupt.sigkill_at(args, db, TABLE, KEYS, KILL_AT)
    before = _records(db)
    interrupt.assert_kept(seen, before, TOTAL)  # every completed record kept
    after = _resume(args, db, before)

    # An uninterrupted sweep: the same records (greedy responses word for word).
    ref_run = tmp_path / "ref"
    ref = run_cli(*_args(vector, ref_run))
    assert ref.returncode == 0, ref.stderr
    want = {k: json.loads(d) for k, (_, d) in _records(ref_run / "run.sqlite3").items()}
    got = {k: json.loads(d) for k, (_, d) in after.items()}
    assert set(got) == set(want)
    for key, record in want.items():
        # Text word for word; numbers to float tolerance (approx takes numbers only).
        numbers = {k for k, v in record.items() if isinstance(v, int | float)
                   and not isinstance(v, bool)}
        assert set(got[key]) == set(record), key
        assert {k: got[key][k] for k in record if k not in numbers} == \
            {k: v for k, v in record.items() if k not in numbers}, key
        assert {k: got[key][k] for k in numbers} == pytest.approx(
            {k: record[k] for k in numbers}, rel=1e-5, abs=1e-6), key


def test_ctrl_c_exits_130_in_one_line_keeps_the_records_and_resumes(
        tmp_path: Path, vector: Path) -> None:
    run = tmp_path / "run"
    db = run / "run.sqlite3"
    args = _args(vector, run)
    seen, proc = interrupt.ctrl_c_at(args, db, TABLE, KEYS, KILL_AT)
    interrupt.assert_interrupted(proc)
    before = _records(db)
    interrupt.assert_kept(seen, before, TOTAL)
    _resume(args, db, before)
