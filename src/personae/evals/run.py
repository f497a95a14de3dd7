"""The eval as a run kind: its run directory, store, summary and outputs go through the
run spine (`personae.runtime.spine`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from personae.evals.config import EvalConfig
from personae.evals.engine import EvalRun
from personae.evals.summary import build_summary
from personae.models import Model
from personae.persona.sample import resolve_personas
from personae.runtime.settings import RunSettings
from personae.runtime.spine import (
    RunContext,
    RunKind,
    RunResult,
    recorded_warnings,
    reopen,
    run,
)
from personae.runtime.store import RunStore

EvalResult = RunResult  # the name run_eval's result had before the spine


class EvalKind(RunKind):
    """An eval: personas × probes × conditions on the subject model, judged."""

    KIND = "eval"
    SETTINGS = EvalConfig

    def __init__(self, config: EvalConfig, *, models: dict[str, Model] | None = None,
                 rescore: bool = False) -> None:
        self.settings = config
        self.engine = EvalRun(config, models=models, rescore=rescore)
        self.identity = self.engine.identity

    def run_dir_identity(self) -> dict[str, Any]:
        # The directory name also covers what the model specs stand for (a GGUF file's hash,
        # a scripted file's contents); the stored identity does not, so older runs resume.
        return {**self.identity, "model_identities": self.engine.model_identities()}

    def bind(self, store: RunStore) -> None:
        self.engine.bind(store)

    async def execute(self, ctx: RunContext) -> None:
        self.engine.cache = ctx.cache
        self.engine.outcome = ctx.outcome
        self.engine.display = ctx.display
        await self.engine.run()

    async def aclose(self) -> None:
        await self.engine.aclose()

    @classmethod
    def summarise(cls, store: RunStore, settings: RunSettings) -> dict[str, Any]:
        assert isinstance(settings, EvalConfig)
        failures, notes = recorded_warnings(store)
        in_run = {r["persona_id"] for _, r in store.items("probe")}
        personas = [p for p in resolve_personas(settings.personas) if p.id in in_run]
        return build_summary(store, settings, personas, failures=failures, notes=notes,
                             duration_s=float(store.get_meta("duration_s") or 0))


def run_eval(config: EvalConfig, out: str | Path | None = None, *, use_cache: bool = True,
             models: dict[str, Model] | None = None, rescore: bool = False) -> RunResult:
    """Run (or resume) an eval and write its ``summary.json``.

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
    return run(EvalKind(config, models=models, rescore=rescore), out, use_cache=use_cache)


def open_run(run_dir: str | Path) -> tuple[RunStore, EvalConfig]:
    """A finished or partial eval's store and settings (a one-line error for another kind
    of run)."""
    opened = reopen(run_dir, [EvalKind])
    assert isinstance(opened.settings, EvalConfig)
    return opened.store, opened.settings
