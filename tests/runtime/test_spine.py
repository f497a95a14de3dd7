"""The run spine: stores of the previous layout are migrated on open, and any kind of run is
re-summarised, re-reported and exported from its records alone, with no model loaded.

``tests/fixtures/runs_v1`` holds run stores written by personae at 2ced515 (store layout 1:
no kind, no layout version), one per kind that can run on a scripted model.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from personae.errors import InputError
from personae.report import KINDS, rewrite_report
from personae.runtime.spine import SummaryHeader, reopen
from personae.runtime.store import STORE_VERSION, RunStore
from tests.conftest import assert_one_line_error, run_cli

V1 = Path(__file__).parents[1] / "fixtures" / "runs_v1"
HEADER = list(SummaryHeader.model_fields)


def _v1(tmp_path: Path, kind: str) -> Path:
    return Path(shutil.copytree(V1 / kind, tmp_path / kind))


def _meta(run_dir: Path) -> dict[str, str]:
    db = sqlite3.connect(run_dir / "run.sqlite3")
    try:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())
    finally:
        db.close()


@pytest.fixture
def no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading any model raises: every module's ``load_model`` is replaced."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a model was loaded: {args}")

    for module in list(sys.modules.values()):
        if (getattr(module, "__name__", "") or "").startswith("personae") \
                and callable(getattr(module, "load_model", None)):
            monkeypatch.setattr(module, "load_model", refuse)


@pytest.mark.parametrize("kind", ["eval", "survey", "simulate"])
def test_a_layout_1_store_is_migrated_and_reported_without_a_model(
        tmp_path: Path, kind: str, no_models: None) -> None:
    run_dir = _v1(tmp_path, kind)
    assert "kind" not in _meta(run_dir) and "store_version" not in _meta(run_dir)
    store = RunStore(run_dir)
    before = store.counts()
    store.close()
    summary = rewrite_report(run_dir)
    meta = _meta(run_dir)
    assert meta["kind"] == kind and meta["store_version"] == str(STORE_VERSION)
    # Every summary starts with the same typed header.
    assert list(summary)[: len(HEADER)] == HEADER
    header = SummaryHeader.model_validate({k: summary[k] for k in HEADER})
    assert (header.kind, header.schema_version, header.counts) == (kind, 2, before)
    assert header.run_dir == str(run_dir) and header.created is not None
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert "<html" in (run_dir / "report.html").read_text()


def test_each_kind_summarises_what_its_records_say(tmp_path: Path, no_models: None) -> None:
    eval_ = rewrite_report(_v1(tmp_path, "eval"))
    assert eval_["fidelity"]["by_condition"]["persona"]["tasks"]["Toxicity"]["value"] == 4.0
    # The survey asked for 4 items: layout 1 kept that only in its summary state.
    survey = rewrite_report(_v1(tmp_path, "survey"))
    assert survey["run"]["counts"]["answers"] == survey["run"]["counts"]["expected"] == 4
    assert survey["run"]["n_items"] == 4 and survey["scores"][0]["respondent"] == "model"
    sim = rewrite_report(_v1(tmp_path, "simulate"))
    assert sim["run"]["counts"]["turns"] == 4
    rows = [json.loads(x) for x in (tmp_path / "simulate" / "transcripts.jsonl").open()]
    assert [t["text"] for t in rows[0]["turns"]][1] == "I fix cars in Enugu."


def test_report_and_export_commands_work_on_every_kind(tmp_path: Path) -> None:
    for kind in ("eval", "survey", "simulate"):
        run_dir = _v1(tmp_path, kind)
        proc = run_cli("report", str(run_dir))
        assert proc.returncode == 0, proc.stderr
        assert f"report: {run_dir / 'report.html'}" in proc.stderr
        proc = run_cli("export", str(run_dir), "--format", "jsonl")
        assert proc.returncode == 0, proc.stderr
        store = RunStore(run_dir)
        counts = store.counts()
        store.close()
        written = sorted(Path(line).name for line in proc.stdout.split())
        assert written == sorted(f"{k}.jsonl" for k in counts)
        for k, n in counts.items():
            assert len((run_dir / "export" / f"{k}.jsonl").read_text().splitlines()) == n


def test_a_store_holds_one_kind_of_run(tmp_path: Path) -> None:
    run_dir = _v1(tmp_path, "eval")
    with pytest.raises(InputError, match="holds a eval run, not a survey run"):
        RunStore(run_dir, kind="survey")
    RunStore(run_dir, kind="eval").close()


def test_reopen_names_what_it_found(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a personae run directory"):
        reopen(tmp_path, KINDS)
    from personae.evals.run import open_run

    with pytest.raises(InputError, match="holds a survey run, not a run of kind eval"):
        open_run(_v1(tmp_path, "survey"))
    store = RunStore(tmp_path / "odd", kind="census")
    store.bind_config({"x": 1})
    store.close()
    with pytest.raises(InputError, match="a census run, not a run of kind eval or survey"):
        reopen(tmp_path / "odd", KINDS)


def test_a_store_from_a_newer_personae_is_refused(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.set_meta("store_version", str(STORE_VERSION + 1))
    store.close()
    with pytest.raises(InputError, match="written by a newer personae"):
        RunStore(tmp_path)
    proc = run_cli("report", str(tmp_path))
    assert_one_line_error(proc, 2, "written by a newer personae")


@pytest.mark.local  # MiniLM similarity, computed while the simulation runs
def test_similarity_is_stored_by_the_run_so_the_summary_needs_no_embedder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from personae.models.scripted import ScriptedModel
    from personae.sim import SimConfig, run_simulation

    lines = iter(["Hello!", "I fix cars in Enugu.", "Nice, I travel.", "Welcome, then."])
    model = ScriptedModel(lambda msgs, p: next(lines))
    cfg = SimConfig(model="scripted:doc", judge=None, metrics=["similarity", "echo"], turns=4,
                    progress="off")
    first = run_simulation(cfg, tmp_path / "run", model=model, use_cache=False).summary
    turns = [t for t in first["conversations"][0]["turns"] if t["metrics"]]
    assert turns and all(t["metrics"]["similarity"] is not None for t in turns)
    from personae.models import embeddings

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the embedding model was loaded")

    from personae.sim import similarity

    monkeypatch.setattr(embeddings, "embed", refuse)
    monkeypatch.setattr(similarity, "embed", refuse)
    again = rewrite_report(tmp_path / "run")
    assert again["conversations"] == first["conversations"] and again["groups"] == \
        first["groups"]
    # A run stored without them (as before they were stored) says so instead of guessing.
    db = sqlite3.connect(tmp_path / "run" / "run.sqlite3")
    with db:
        db.execute("DELETE FROM records WHERE kind = 'similarity'")
    db.close()
    bare = rewrite_report(tmp_path / "run")
    assert any("similarity and echo are missing for" in w for w in bare["warnings"])
    assert all(t["metrics"].get("similarity") is None
               for t in bare["conversations"][0]["turns"])


def test_a_report_covers_what_the_run_asked_for(tmp_path: Path, no_models: None) -> None:
    """``--items``/``--limit`` are not part of a run's identity (a larger one extends it),
    but the rewritten summary covers what the latest session asked for, as the run's did."""
    from personae.models.scripted import ScriptedModel
    from personae.runtime.spine import run
    from personae.survey.run import SurveyConfig, SurveyKind

    model = ScriptedModel(choices={"2": 0.5, "4": 0.5})
    kind = SurveyKind(SurveyConfig(model="scripted:x", items=3, personas="sample", limit=2,
                                   progress="off"), model=model)
    first = run(kind, tmp_path / "run", use_cache=False).summary
    again = rewrite_report(tmp_path / "run")
    assert again["run"]["counts"] == first["run"]["counts"] and \
        again["run"]["counts"]["expected"] == 3 * 2
    assert [a["respondent"] for a in again["scores"]] == [a["respondent"]
                                                          for a in first["scores"]]
