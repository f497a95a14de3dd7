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
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.steer import interrupt

pytestmark = pytest.mark.model

MODEL = "hf:bundled?batch_size=1"
TOTAL = 10  # 1 instruction pair × 5 questions × (pos, neg)
KILL_AT = 3  # responses stored when the run is killed
TABLE, KEYS = "responses", ("key",)  # the response cache's table, one row per request key

Rows = dict[interrupt.Key, tuple[float, str]]


def _args(out: Path) -> list[str]:
    return ["steer", "extract", "--trait", "extroverted", "--model", MODEL,
            "--instructions", "1", "--questions", "5", "--max-tokens", "6", "--out", str(out)]


def _rows(db: Path) -> Rows:
    """``{(request key,): (created, completion)}`` of the response cache."""
    return interrupt.rows(db, TABLE, KEYS, ("created", "completion"))


def _check_resumed(db: Path, before: Rows, out: Path) -> None:
    """The re-run after the kill: finished, every stored response untouched, every missing
    one generated exactly once."""
    interrupt.log_attempts(db, TABLE, KEYS)
    again = run_cli(*_args(out))
    assert again.returncode == 0, again.stderr
    assert out.is_file()
    interrupt.assert_resumed(db, KEYS, before, _rows(db), TOTAL)


def test_sigkill_then_same_command_resumes_with_no_repeated_call_and_the_same_vector(
        tmp_path: Path, isolated_cache: Path) -> None:
    from personae.vectors.file import load_vector

    db = isolated_cache / "responses.sqlite3"
    out = tmp_path / "extroverted.safetensors"
    seen = interrupt.sigkill_at(_args(out), db, TABLE, KEYS, KILL_AT)
    before = _rows(db)
    interrupt.assert_kept(seen, before, TOTAL)  # every completed response kept
    assert not out.exists()
    _check_resumed(db, before, out)

    # An uninterrupted run, in a cache of its own: the same responses, the same vector.
    ref_cache = tmp_path / "ref-cache"
    ref_cache.mkdir()
    (ref_cache / "hf").symlink_to((isolated_cache / "hf").resolve(), target_is_directory=True)
    ref_out = tmp_path / "ref.safetensors"
    ref = run_cli(*_args(ref_out), env={"PERSONAE_CACHE_DIR": str(ref_cache)})
    assert ref.returncode == 0, ref.stderr

    def texts(rows: Rows) -> dict[interrupt.Key, str]:
        return {k: json.loads(c)["text"] for k, (_, c) in rows.items()}

    assert texts(_rows(ref_cache / "responses.sqlite3")) == texts(_rows(db))
    got, want = load_vector(out), load_vector(ref_out)
    np.testing.assert_allclose(got.vectors, want.vectors, rtol=1e-5, atol=1e-6)
    assert got.meta.n_pairs == want.meta.n_pairs == TOTAL // 2


def test_ctrl_c_exits_130_in_one_line_keeps_the_responses_and_resumes(
        tmp_path: Path, isolated_cache: Path) -> None:
    db = isolated_cache / "responses.sqlite3"
    out = tmp_path / "extroverted.safetensors"
    seen, proc = interrupt.ctrl_c_at(_args(out), db, TABLE, KEYS, KILL_AT)
    interrupt.assert_interrupted(proc)
    assert not out.exists()  # no vector from part of the responses
    before = _rows(db)
    interrupt.assert_kept(seen, before, TOTAL)
    _check_resumed(db, before, out)
