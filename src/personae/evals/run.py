"""Running an eval end to end: the run directory, the store, the summary and the report."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from personae._files import atomic_write
from personae.errors import InputError, describe_validation
from personae.evals.config import EvalConfig
from personae.evals.engine import EvalRun
from personae.evals.summary import build_summary
from personae.models import Model
from personae.persona.sample import resolve_personas
from personae.runtime import ResponseCache
from personae.runtime.store import RunStore, open_store, summarise_once


@dataclass
class EvalResult:
    run_dir: Path
    summary: dict[str, Any]
    failures: list[str]
    model_calls: int
    cache_hits: int


def run_eval(config: EvalConfig, out: str | Path | None = None, *, use_cache: bool = True,
             models: dict[str, Model] | None = None, rescore: bool = False) -> EvalResult:
    """Run (or resume) an eval and write ``summary.json`` and ``report.html`` into its dir.

    >>> import tempfile
    >>> from personae.models import ScriptedModel
    >>> judge = ScriptedModel(["Therefore, the final score is 4."], name="doc")
    >>> cfg = EvalConfig(personas="personagym", limit=1, per_task=1, tasks=["Toxicity"],
    ...                  model="scripted:doc", judges=["scripted:doc"], suites=["fidelity"],
    ...                  progress="off")
    >>> result = run_eval(cfg, tempfile.mkdtemp(), models={"scripted:doc": judge},
    ...                   use_cache=False)
    >>> result.summary["fidelity"]["by_condition"]["persona"]["tasks"]["Toxicity"]["value"]
    4.0
    """
    run = EvalRun(config, models=models, rescore=rescore)
    # The directory name also covers what the model specs stand for (a GGUF file's hash, a
    # scripted file's contents); the stored identity does not, so older runs still resume.
    run_dir = Path(out) if out is not None else config.default_run_dir(
        {**run.identity, "model_identities": run.model_identities()})
    store = RunStore(run_dir)
    run.cache = cache = ResponseCache() if use_cache else None
    start = time.monotonic()
    try:
        run.bind(store)

        async def main() -> None:
            try:
                await run.run()
            finally:
                await run.aclose()

        asyncio.run(main())
        summary = summarise_once(
            store, store.counts(), start, failed=bool(run.outcome.failures),
            write=lambda elapsed: write_outputs(store, config, failures=run.outcome.failures,
                                                notes=run.outcome.notes, duration_s=elapsed))
        return EvalResult(run_dir, summary, run.outcome.failures, run.outcome.model_calls,
                          run.outcome.cache_hits)
    finally:
        store.close()
        if cache is not None:
            cache.close()


def open_run(run_dir: str | Path) -> tuple[RunStore, EvalConfig]:
    """A finished or partial run's store and settings."""
    path = Path(run_dir)
    store = open_store(path)
    stored = {k: v for k, v in store.config().items() if not k.endswith("_digest")}
    other = ("survey" if "instrument" in stored and "variants" in stored
             else "steer sweep" if "coefficients" in stored
            else "simulate" if "user_script" in stored and "window" in stored else None)
    if other is not None:
        store.close()
        raise InputError(f"{path}: a `personae {other}` run, not an eval; run the same "
                         f"`personae {other}` command again: it makes no model calls and "
                         "rewrites its outputs")
    try:
        return store, EvalConfig(**stored)
    except ValidationError as exc:
        store.close()
        raise InputError(f"{path}: stored settings are not valid for this personae version: "
                         + describe_validation(exc)) from None


def write_outputs(store: RunStore, config: EvalConfig, *, failures: list[str] | None = None,
                  notes: list[str] | None = None,
                  duration_s: float | None = None) -> dict[str, Any]:
    """(Re)write ``summary.json`` and ``report.html`` from the stored records.

    The run's failures and notes are kept in the store, so a report rewritten later
    (``personae report``, given neither) keeps every warning the run had."""
    from personae.report import write_report

    kept = json.loads(store.get_meta("warnings") or "{}")
    if failures is None and notes is None:
        failures, notes = kept.get("failures", []), kept.get("notes", [])
    else:
        # Notes are final (what the questions stage found stays true), and a rescore does
        # not make them again: keep the stored ones. Failures are the latest session's.
        notes = list(dict.fromkeys([*kept.get("notes", []), *(notes or [])]))
        store.set_meta("warnings", json.dumps({"failures": failures or [], "notes": notes}))
    in_run = {r["persona_id"] for _, r in store.items("probe")}
    personas = [p for p in resolve_personas(config.personas) if p.id in in_run]
    if duration_s is None:
        duration_s = float(store.get_meta("duration_s") or 0)
    summary = build_summary(store, config, personas, failures=failures or [],
                            notes=notes or [], duration_s=duration_s)
    atomic_write(store.run_dir / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False))
    write_report(summary, store.run_dir)
    return summary
