"""A simulation run: conversations held, judged and summarised in one run directory.

Stages: the conversations (every turn stored as it is taken), then the per-turn judgements
(fidelity, NLI, projection; each stored), then ``summary.json`` and ``report.html``, with the
transcripts as ``transcripts.jsonl``. Re-running the same command resumes whatever stage was
cut short; a finished run makes no model calls.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from personae.errors import InputError
from personae.models import ChatParams, Model, load_model
from personae.models.embeddings import EMBEDDER_ID
from personae.models.spec import is_bundled
from personae.models.whitebox import require_white_box
from personae.persona import Persona, load_template
from personae.persona.sample import resolve_personas
from personae.runtime import Runner
from personae.runtime.settings import RunSettings
from personae.runtime.spine import RunContext, RunKind, RunResult, recorded_warnings, run
from personae.runtime.store import RunStore
from personae.sim.agents import Agent, Turn
from personae.sim.config import DEFAULT_USER, SimConfig, load_script, plan_conversations
from personae.sim.engine import ConversationPlan, Engine
from personae.sim.judging import judge_jobs, project_turns, run_judgements
from personae.sim.similarity import scored, similarity_values
from personae.sim.summary import build_summary, transcript_rows
from personae.vectors.file import file_digest, load_vector

BUNDLED_WARNING = (
    "The model is the bundled SmolLM2-135M: it stays in character for a few sentences, then "
    "rambles. The curves show that the pipeline works; use --model (and --judge) with capable "
    "models for real measurements.")
BUNDLED_JUDGE_WARNING = (
    "The judge is the bundled SmolLM2-135M: its fidelity and NLI verdicts are close to noise; "
    "use --judge with a capable model (or --judge none).")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class SimPlan:
    """Who talks with whom in a simulation: personas, users, conversations and their
    agents. Built from the settings and the files they name, never a model, so a stored
    simulation can be summarised again offline. Everything that can be wrong with the input
    is found here, before a directory is made or a model call spent."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
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
        # Contents, not just paths: resuming after a file changed would mix two runs.
        self.digests = {
            "personas_digest": _digest("\n".join(f"{p.id}:{p.content_hash()}"
                                                 for p in all_personas)),
            "users_digest": _digest("\n".join(f"{u.id}:{u.content_hash()}" for u in users)),
            "script_digest": _digest("\n".join(load_script(config.user_script)))
            if config.user_script else "",
            "template_sha256": self.template.sha256,
        }

    def turns(self, store: RunStore) -> dict[str, list[Turn]]:
        """Every stored turn, by conversation (in plan order), in turn order."""
        out: dict[str, list[Turn]] = {p.id: [] for p in self.plans}
        for _, rec in store.items("turn"):
            if rec["conversation_id"] in out:
                out[rec["conversation_id"]].append(Turn.model_validate(rec))
        for turns in out.values():
            turns.sort(key=lambda t: t.index)
        return out


class SimKind(RunKind):
    """A simulation: the conversations held, then their turns judged and projected."""

    KIND = "simulate"
    SETTINGS = SimConfig

    def __init__(self, config: SimConfig, *, model: Model | None = None,
                 judge: Model | None = None) -> None:
        self.settings = self.config = config
        self.plan = SimPlan(config)
        self.vector, vector_digest = None, ""
        if "projection" in config.active_metrics():  # a file too: read before any model
            self.vector = load_vector(config.vector)
            self.vector.check_layer(int(config.layer or 0))
            vector_digest = file_digest(config.vector or "")
        self.owns_models = model is None and judge is None
        self.model = model if model is not None else load_model(config.model)
        self.judge: Model | None = None
        if config.judge:
            self.judge = judge if judge is not None else (
                self.model if config.judge == config.model else load_model(config.judge))
        if self.vector is not None:
            require_white_box(self.model)
        self.identity = config.identity(**self.plan.digests, vector_digest=vector_digest,
                                        model_identity=self.model.identity,
                                        judge_identity=self.judge.identity if self.judge
                                        else "")

    def warnings(self) -> list[str]:
        cfg = self.config
        return ([BUNDLED_WARNING] if is_bundled(cfg.model, self.model) else []) + (
            [BUNDLED_JUDGE_WARNING] if self.judge is not None and cfg.judge
            and is_bundled(cfg.judge, self.judge) else [])

    async def execute(self, ctx: RunContext) -> None:
        self.announce(ctx)
        await self.converse(ctx)
        await self.judge_turns(ctx)
        self.project(ctx.store)
        self.embed(ctx)

    async def converse(self, ctx: RunContext) -> None:
        cfg = self.config
        runner = Runner(self.model, cache=ctx.cache, concurrency=cfg.concurrency,
                        progress="off")
        judge = (Runner(self.judge, cache=ctx.cache, concurrency=cfg.concurrency,
                        progress="off") if self.judge else None)
        engine = Engine(ctx.store, runner, ChatParams(max_tokens=cfg.max_tokens,
                                                      temperature=cfg.temperature,
                                                      seed=cfg.seed),
                        cfg.turns, cfg.window, cfg.policy, judge, ctx.outcome.failures,
                        repeat_ratio=cfg.repeat_ratio)
        try:
            await engine.run(self.plan.plans, concurrency=runner.concurrency,
                             progress=cfg.progress)
        finally:
            count(ctx, runner, judge)

    async def judge_turns(self, ctx: RunContext) -> None:
        metrics = self.config.active_metrics()
        if self.judge is None or not {"fidelity", "consistency"} & set(metrics):
            return
        jobs = []
        for cid, turns in self.plan.turns(ctx.store).items():
            jobs += judge_jobs(turns, self.plan.agents[cid], metrics=metrics,
                               judge=self.config.judge or "",
                               max_facts=self.config.max_facts)
        runner = Runner(self.judge, cache=ctx.cache, concurrency=self.config.concurrency,
                        progress="off")
        try:
            await run_judgements(ctx.store, runner, jobs, failures=ctx.outcome.failures,
                                 progress=self.config.progress)
        finally:
            count(ctx, runner)

    def project(self, store: RunStore) -> None:
        if self.vector is None:
            return
        project_turns(store, self.model, self.vector, int(self.config.layer or 0),
                      self.plan.turns(store), self.plan.agents, window=self.config.window,
                      progress=self.config.progress)

    def embed(self, ctx: RunContext) -> None:
        """Similarity and echo of every scored turn not yet stored (kind ``similarity``)."""
        if not {"similarity", "echo"} & set(self.config.active_metrics()):
            return
        done = ctx.store.keys("similarity")
        # Echo reads the turn before: a conversation with any turn to do is embedded whole.
        todo = {cid: turns for cid, turns in self.plan.turns(ctx.store).items()
                if any(scored(self.plan.agents[cid].get(t.speaker), t)
                       and (cid, t.index) not in done for t in turns)}
        if not todo:
            return
        try:
            values = similarity_values(todo, self.plan.agents)
        except (ImportError, OSError, InputError) as exc:
            # Not a note kept with the run: the summary says which turns lack them, and a
            # re-run once the model is installed fills them in.
            ctx.display.warn(f"similarity and echo not computed: the embedding model is not "
                             f"available ({exc}); install personae[local]")
            return
        for (cid, index), v in values.items():
            ctx.store.put("similarity", (cid, index),
                          {"conversation_id": cid, "index": index, **v,
                           "embedder": EMBEDDER_ID})

    def announce(self, ctx: RunContext) -> None:
        cfg, plan = self.config, self.plan
        kind = (f"1 group of {len(plan.personas)} personas" if cfg.group
                else f"{len(plan.personas)} personas × "
                + ("a user script" if cfg.user_script else
                   f"{len(plan.plans) // max(1, len(plan.personas) * cfg.conversations)} "
                   "simulated user(s)"))
        ctx.display.say(
            f"simulate: {len(plan.plans)} conversations ({kind}, {cfg.conversations} "
            f"each) of up to {cfg.turns} turns on {cfg.model}; judge: {cfg.judge or 'none'}; "
            f"metrics: {', '.join(cfg.active_metrics())}; run dir: {ctx.store.run_dir}")

    async def aclose(self) -> None:
        if not self.owns_models:
            return
        for m in {id(x): x for x in (self.model, self.judge) if x is not None}.values():
            await m.aclose()

    @classmethod
    def summarise(cls, store: RunStore, settings: RunSettings) -> dict[str, Any]:
        assert isinstance(settings, SimConfig)
        plan = SimPlan(settings)
        failures, notes = recorded_warnings(store)
        return build_summary(plan, store, plan.turns(store), dict(store.items("end")),
                             failures=failures, notes=notes)

    @classmethod
    def artifacts(cls, store: RunStore, settings: RunSettings,
                  summary: dict[str, Any]) -> dict[str, str]:
        """``transcripts.jsonl``: every conversation, one JSON row each."""
        assert isinstance(settings, SimConfig)
        plan = SimPlan(settings)
        rows = transcript_rows(plan.plans, plan.turns(store), dict(store.items("end")))
        return {"transcripts.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                             for r in rows)}


def count(ctx: RunContext, *runners: Runner | None) -> None:
    for r in runners:
        if r is not None:
            ctx.outcome.model_calls += r.stats.model_calls
            ctx.outcome.cache_hits += r.stats.cache_hits


SimResult = RunResult  # the name run_simulation's result had before the spine


def run_simulation(config: SimConfig, out: str | Path | None = None, *, use_cache: bool = True,
                   model: Model | None = None, judge: Model | None = None) -> RunResult:
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
    return run(SimKind(config, model=model, judge=judge), out, use_cache=use_cache)
