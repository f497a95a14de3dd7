"""A simulation run: conversations held, judged and summarised in one run directory.

Stages: the conversations (every turn stored as it is taken), then the per-turn judgements
(fidelity, NLI, projection; each stored), then ``summary.json`` and ``report.html``, with the
transcripts as ``transcripts.jsonl``. Re-running the same command resumes whatever stage was
cut short; a finished run makes no model calls.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personae._files import atomic_write
from personae.errors import InputError
from personae.models import ChatParams, Model, load_model
from personae.models.spec import is_bundled
from personae.persona import Persona, load_template
from personae.persona.sample import resolve_personas
from personae.runtime import ResponseCache, Runner
from personae.runtime.store import RunStore, summarise_once
from personae.sim.agents import Agent, Turn
from personae.sim.config import DEFAULT_USER, SimConfig, load_script, plan_conversations
from personae.sim.engine import ConversationPlan, Engine
from personae.sim.judging import judge_jobs, project_turns, run_judgements

BUNDLED_WARNING = (
    "The model is the bundled SmolLM2-135M: it stays in character for a few sentences, then "
    "rambles. The curves show that the pipeline works; use --model (and --judge) with capable "
    "models for real measurements.")
BUNDLED_JUDGE_WARNING = (
    "The judge is the bundled SmolLM2-135M: its fidelity and NLI verdicts are close to noise; "
    "use --judge with a capable model (or --judge none).")


@dataclass
class SimResult:
    run_dir: Path
    summary: dict[str, Any]
    failures: list[str]
    model_calls: int
    cache_hits: int
    warnings: list[str] = field(default_factory=list)


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


class SimRun:
    """A simulation bound to its store. Everything that can be wrong with the input is
    found in ``__init__``, before a directory is made or a model call spent."""

    def __init__(self, config: SimConfig, *, model: Model | None = None,
                 judge: Model | None = None) -> None:
        self.config = config
        self.failures: list[str] = []
        self.model_calls = self.cache_hits = 0
        all_personas = resolve_personas(config.personas)
        if not all_personas:
            raise InputError(f"{config.personas}: no personas")
        self.personas: list[Persona] = all_personas[: config.limit]
        if config.group and len(self.personas) < 2:
            raise InputError(f"{config.personas}: a group conversation needs 2 or more "
                             "personas")
        users = (resolve_personas(config.user_personas) if config.user_personas
                 else [DEFAULT_USER])
        if not users:
            raise InputError(f"{config.user_personas}: no personas")
        self.template = load_template(config.template)
        self.plans: list[ConversationPlan] = plan_conversations(config, self.personas, users,
                                                                self.template)
        if not self.plans:
            raise InputError(f"{config.user_personas}: every user is one of the personas "
                             "itself; a persona does not talk with itself")
        self.agents: dict[str, dict[str, Agent]] = {
            p.id: {a.id: a for a in p.agents} for p in self.plans}
        self.vector, vector_digest = None, ""
        if "projection" in config.active_metrics():  # a file too: read before any model
            from personae.vectors.file import file_digest, load_vector

            self.vector = load_vector(config.vector)
            self.vector.check_layer(int(config.layer or 0))
            vector_digest = file_digest(config.vector or "")
        self.model = model if model is not None else load_model(config.model)
        self.judge: Model | None = None
        if config.judge:
            self.judge = judge if judge is not None else (
                self.model if config.judge == config.model else load_model(config.judge))
        if self.vector is not None:
            from personae.models.whitebox import require_white_box

            require_white_box(self.model)
        # Contents, not just paths: resuming after a file changed would mix two runs.
        self.identity = config.identity(
            personas_digest=_digest("\n".join(f"{p.id}:{p.content_hash()}"
                                              for p in all_personas)),
            users_digest=_digest("\n".join(f"{u.id}:{u.content_hash()}" for u in users)),
            script_digest=_digest("\n".join(load_script(config.user_script)))
            if config.user_script else "",
            template_sha256=self.template.sha256,
            vector_digest=vector_digest,
            model_identity=self.model.identity,
            judge_identity=self.judge.identity if self.judge else "")

    async def converse(self, store: RunStore, cache: ResponseCache | None) -> None:
        cfg = self.config
        runner = Runner(self.model, cache=cache, concurrency=cfg.concurrency, progress="off")
        judge = (Runner(self.judge, cache=cache, concurrency=cfg.concurrency, progress="off")
                 if self.judge else None)
        engine = Engine(store, runner, ChatParams(max_tokens=cfg.max_tokens,
                                                  temperature=cfg.temperature, seed=cfg.seed),
                        cfg.turns, cfg.window, cfg.policy, judge, self.failures,
                        repeat_ratio=cfg.repeat_ratio)
        try:
            await engine.run(self.plans, concurrency=runner.concurrency, progress=cfg.progress)
        finally:
            self.count(runner, judge)

    async def judge_turns(self, store: RunStore, cache: ResponseCache | None) -> None:
        metrics = self.config.active_metrics()
        if self.judge is None or not {"fidelity", "consistency"} & set(metrics):
            return
        jobs = []
        for cid, turns in self.turns(store).items():
            jobs += judge_jobs(turns, self.agents[cid], metrics=metrics,
                               judge=self.config.judge or "",
                               max_facts=self.config.max_facts)
        runner = Runner(self.judge, cache=cache, concurrency=self.config.concurrency,
                        progress="off")
        try:
            await run_judgements(store, runner, jobs, failures=self.failures,
                                 progress=self.config.progress)
        finally:
            self.count(runner)

    def project(self, store: RunStore) -> None:
        if self.vector is None:
            return
        project_turns(store, self.model, self.vector, int(self.config.layer or 0),
                      self.turns(store), self.agents, window=self.config.window,
                      progress=self.config.progress)

    def turns(self, store: RunStore) -> dict[str, list[Turn]]:
        """Every stored turn, by conversation (in plan order), in turn order."""
        out: dict[str, list[Turn]] = {p.id: [] for p in self.plans}
        for _, rec in store.items("turn"):
            if rec["conversation_id"] in out:
                out[rec["conversation_id"]].append(Turn.model_validate(rec))
        for turns in out.values():
            turns.sort(key=lambda t: t.index)
        return out

    def count(self, *runners: Runner | None) -> None:
        for r in runners:
            if r is not None:
                self.model_calls += r.stats.model_calls
                self.cache_hits += r.stats.cache_hits

    def announce(self, store: RunStore) -> None:
        if self.config.progress == "off":
            return
        cfg = self.config
        kind = (f"1 group of {len(self.personas)} personas" if cfg.group
                else f"{len(self.personas)} personas × "
                + ("a user script" if cfg.user_script else
                   f"{len(self.plans) // max(1, len(self.personas) * cfg.conversations)} "
                   "simulated user(s)"))
        print(f"simulate: {len(self.plans)} conversations ({kind}, {cfg.conversations} "
              f"each) of up to {cfg.turns} turns on {cfg.model}; judge: {cfg.judge or 'none'}; "
              f"metrics: {', '.join(cfg.active_metrics())}; run dir: {store.run_dir}",
              file=sys.stderr, flush=True)

    async def aclose(self) -> None:
        for m in {id(x): x for x in (self.model, self.judge) if x is not None}.values():
            await m.aclose()


def run_simulation(config: SimConfig, out: str | Path | None = None, *, use_cache: bool = True,
                   model: Model | None = None, judge: Model | None = None) -> SimResult:
    """Hold (or resume) the conversations, judge their turns, write the outputs.

    >>> import tempfile
    >>> from personae.models.scripted import ScriptedModel
    >>> lines = iter(["Hello!", "I fix cars in Enugu.", "Nice, I travel.", "Welcome, then."])
    >>> m = ScriptedModel(lambda msgs, p: next(lines))
    >>> cfg = SimConfig(model="scripted:doc", judge=None, metrics=["leak"], turns=4,
    ...                 progress="off")
    >>> result = run_simulation(cfg, tempfile.mkdtemp(), model=m, use_cache=False)
    >>> result.summary["run"]["counts"]["turns"]
    4
    >>> run_simulation(cfg, result.run_dir, model=m, use_cache=False).model_calls  # done
    0
    """
    run = SimRun(config, model=model, judge=judge)
    run_dir = Path(out) if out is not None else config.default_run_dir(run.identity)
    store = RunStore(run_dir)
    cache = ResponseCache() if use_cache else None
    start = time.monotonic()
    try:
        store.bind_config(run.identity)
        shown = ([BUNDLED_WARNING] if is_bundled(config.model, run.model) else []) + (
            [BUNDLED_JUDGE_WARNING] if run.judge is not None and config.judge
            and is_bundled(config.judge, run.judge) else [])
        if config.progress != "off":
            for warning in shown:
                print(f"personae: warning: {warning}", file=sys.stderr, flush=True)
        run.announce(store)

        async def main() -> None:
            try:
                await run.converse(store, cache)
                await run.judge_turns(store, cache)
            finally:
                if model is None and judge is None:
                    await run.aclose()

        asyncio.run(main())
        run.project(store)
        summary = summarise_once(
            store, [store.counts(), config.limit], start, failed=bool(run.failures),
            write=lambda elapsed: write_outputs(run, store, failures=run.failures,
                                                duration_s=elapsed, warnings=shown))
        return SimResult(run_dir, summary, run.failures, run.model_calls, run.cache_hits, shown)
    finally:
        store.close()
        if cache is not None:
            cache.close()


def write_outputs(run: SimRun, store: RunStore, *, failures: list[str], duration_s: float,
                  warnings: list[str]) -> dict[str, Any]:
    """(Re)write ``summary.json``, ``report.html`` and ``transcripts.jsonl``."""
    from personae.report.simulate import write_simulate_report
    from personae.sim.summary import build_summary, transcript_rows

    conversations = run.turns(store)
    ends = dict(store.items("end"))
    rows = transcript_rows(run.plans, conversations, ends)
    atomic_write(store.run_dir / "transcripts.jsonl",
                 "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    summary = build_summary(run, store, conversations, ends, failures=failures,
                            duration_s=duration_s, warnings=warnings)
    atomic_write(store.run_dir / "summary.json",
                 json.dumps(summary, indent=2, ensure_ascii=False))
    write_simulate_report(summary, store.run_dir)
    return summary
