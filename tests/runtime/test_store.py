"""The run store: records kept exactly once, settings bound to the run, exports."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personae.errors import InputError
from personae.runtime.store import RunStore


def test_first_write_wins_and_order_is_kept(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    assert store.put("response", "b", {"text": "one"})
    assert store.put("response", "a", {"text": "two"})
    assert not store.put("response", "b", {"text": "three"})
    assert [k for k, _ in store.items("response")] == ["b", "a"]
    assert store.get("response", "b") == {"text": "one"}
    assert store.counts() == {"response": 2}
    store.close()
    assert RunStore(tmp_path).keys("response") == {"a", "b"}  # on disk, not in memory


def test_bound_settings_must_match_to_resume(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.bind_config({"model": "bundled", "seed": 0})
    store.bind_config({"model": "bundled", "seed": 0})
    with pytest.raises(InputError, match=r"other settings \(seed differ\)"):
        store.bind_config({"model": "bundled", "seed": 1})


def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "run.sqlite3").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError, match="not a personae run store"):
        RunStore(tmp_path)


def _writer(path: str, worker: int) -> None:
    store = RunStore(path)
    for i in range(50):
        store.put("response", f"k{i}", {"worker": worker})


def test_concurrent_processes_never_duplicate_a_key(tmp_path: Path) -> None:
    procs = [multiprocessing.Process(target=_writer, args=(str(tmp_path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert RunStore(tmp_path).counts() == {"response": 50}


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8),
                       st.one_of(st.none(), st.integers(), st.floats(allow_nan=False),
                                 st.text(), st.lists(st.integers(), max_size=3)), max_size=5))
def test_records_round_trip_through_jsonl(tmp_path_factory: pytest.TempPathFactory,
                                          record: dict) -> None:
    d = tmp_path_factory.mktemp("rt")
    store = RunStore(d)
    store.put("x", "key", record)
    (path,) = store.export(d / "out", "jsonl")
    row = json.loads(path.read_text())
    assert row.pop("key") == "key" or "key" in record
    assert store.get("x", "key") == record


def test_parquet_export_keeps_nested_values_as_json(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.put("nli", "a", {"label": "neutral", "probs": [0.2, 0.5, 0.3]})
    store.put("nli", "b", {"label": None, "probs": [1.0, 0.0, 0.0]})
    (path,) = store.export(tmp_path / "out", "parquet")
    rows = pq.read_table(path).to_pylist()
    assert [r["label"] for r in rows] == ["neutral", None]
    assert json.loads(rows[0]["probs"]) == [0.2, 0.5, 0.3]
    with pytest.raises(InputError, match="csv"):
        store.export(tmp_path / "out", "csv")
