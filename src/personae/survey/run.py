"""A survey run: a questionnaire put to personas (or the bare model) on one model, stored.

Respondents are the personas (or the bare model when there are none); with trait shaping,
every respondent is also asked under each Big Five domain at each of the nine levels, and
then answers only that domain's items. Every respondent answers every variant. Each answer
is written to the run store (kind ``answer``, key ``respondent|variant|item``) the moment it
arrives, so a killed run resumes where it stopped and a finished one makes no model calls.
The run directory then holds ``summary.json`` and ``report.html``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from personae.errors import InputError
from personae.instruments.administer import (
    MODES,
    ItemAnswer,
    Mode,
    Variant,
    administer,
    expand_variants,
)
from personae.instruments.questionnaire import Questionnaire, load_questionnaire
from personae.instruments.shaping import (
    DOMAINS,
    ShapingCondition,
    shaping_conditions,
    shaping_prompt,
)
from personae.models import Model, load_model
from personae.models.spec import is_bundled
from personae.persona import Persona, load_template, render_system_prompt
from personae.persona.sample import resolve_personas
from personae.runtime import ProgressReporter, Runner
from personae.runtime.settings import RunSettings
from personae.runtime.spine import RunContext, RunKind, RunResult, recorded_warnings, run
from personae.runtime.store import Key, RunStore
from personae.survey.summary import build_summary

BARE = "model"  # the respondent id of the bare model (no persona)
BUNDLED_WARNING = (
    "The model is the bundled SmolLM2-135M: its questionnaire answers are close to noise "
    "(it agrees with almost every statement). The scores show that the pipeline works, not a "
    "personality; use --model with a capable model for real measurements.")


class SurveyConfig(RunSettings):
    """Everything that decides what a survey run computes.

    >>> SurveyConfig(variants=["base", "reversed"]).instrument
    'ipip-120'
    """

    KIND = "survey"
    EXTENDS = frozenset({"limit", "items"})  # a larger one extends a run
    FILES = ("personas", "instrument", "template")

    personas: str | None = None
    model: str = "bundled"
    instrument: str = "ipip-120"
    mode: Mode = "logprob"
    variants: list[str] = Field(default_factory=lambda: ["base"])
    shape: bool = False
    limit: int | None = Field(default=None, ge=1)
    items: int | None = Field(default=None, ge=1)
    template: str = "card"
    seed: int = Field(default=0, ge=0)
    block_size: int = Field(default=10, ge=1, le=200)
    concurrency: int | None = Field(default=None, ge=1)
    progress: Literal["auto", "bar", "lines", "off"] = "auto"

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, v: str) -> str:
        if v not in MODES:
            raise ValueError(f"unknown mode {v!r}; choose from {', '.join(MODES)}")
        return v

    @field_validator("variants")
    @classmethod
    def _some_variant(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one variant is needed")
        return list(dict.fromkeys(v))


def build_survey_config(**given: Any) -> SurveyConfig:
    """Settings from what the user gave (None means not given); files become absolute."""
    return SurveyConfig.from_given(given)


@dataclass(frozen=True)
class Respondent:
    """Who answers: a persona or the bare model, optionally under a shaping prompt."""

    id: str
    persona: Persona | None
    shaping: ShapingCondition | None
    system: str | None
    label: str
    items: tuple[str, ...] | None = None  # None: every item of the run


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def questionnaire_digest(q: Questionnaire) -> str:
    return _digest(q.model_dump_json())


def answer_key(respondent: str, variant: str, item_id: str) -> Key:
    return (respondent, variant, item_id)


class SurveyPlan:
    """Who answers what in a survey: the questionnaire, its variants and items, the
    respondents. Built from the settings and the files they name, never a model, so a
    stored survey can be summarised again offline. Everything that can be wrong with the
    input is found here, before a run directory is made or a model call spent."""

    def __init__(self, config: SurveyConfig) -> None:
        self.config = config
        self.questionnaire = load_questionnaire(config.instrument)
        self.variants: list[Variant] = expand_variants(self.questionnaire, config.variants)
        all_items = [i.id for i in self.questionnaire.items]
        self.items = all_items[: config.items] if config.items else all_items
        self.personas: list[Persona] = []
        self.digests = {"questionnaire_digest": questionnaire_digest(self.questionnaire)}
        if config.personas is not None:
            personas = resolve_personas(config.personas)
            if not personas:
                raise InputError(f"{config.personas}: no personas")
            self.digests["personas_digest"] = _digest("\n".join(
                f"{p.id}:{p.content_hash()}" for p in personas))
            self.personas = personas[: config.limit]
        self.template = load_template(config.template)
        if config.shape:
            self.check_shaping()
        self.respondents = self.plan_respondents()

    def check_shaping(self) -> None:
        domains = {s.id for s in self.questionnaire.scales if s.domain is None}
        missing = [d for d in DOMAINS if d not in domains]
        if missing:
            raise InputError(f"{self.config.instrument}: trait shaping needs the Big Five "
                             f"domains {', '.join(DOMAINS)} as scale ids; missing "
                             f"{', '.join(missing)}")

    def plan_respondents(self) -> list[Respondent]:
        bases: list[tuple[str, Persona | None, str | None, str]] = (
            [(p.id, p, render_system_prompt(p, self.template), p.name or p.id)
             for p in self.personas] or [(BARE, None, None, "bare model")])
        out = []
        for rid, persona, system, label in bases:
            out.append(Respondent(rid, persona, None, system, label))
            if not self.config.shape:
                continue
            for cond in shaping_conditions():
                items = tuple(i for i in self.items if self.questionnaire.item(i).scale
                              == cond.domain)
                if not items:
                    continue
                out.append(Respondent(f"{rid}|{cond.id}", persona, cond,
                                      shaping_prompt(cond.domain, cond.level,
                                                     persona_prompt=system),
                                      f"{label}, {cond.domain} level {cond.level}", items))
        return out

    @staticmethod
    def stored(store: RunStore) -> dict[tuple[str, str], dict[str, ItemAnswer]]:
        """The stored answers by (respondent, variant), then item."""
        out: dict[tuple[str, str], dict[str, ItemAnswer]] = defaultdict(dict)
        for _, rec in store.items("answer"):
            answer = ItemAnswer.model_validate({k: rec[k] for k in ItemAnswer.model_fields
                                                if k in rec})
            out[(rec["respondent"], rec["variant"])][rec["item_id"]] = answer
        return out


class SurveyKind(RunKind):
    """A survey: every respondent answers every variant of the questionnaire."""

    KIND = "survey"
    SETTINGS = SurveyConfig

    def __init__(self, config: SurveyConfig, *, model: Model | None = None) -> None:
        self.settings = self.config = config
        self.plan = SurveyPlan(config)
        self.owns_model = model is None
        self.model = model if model is not None else load_model(config.model)
        # The model's identity (weights' hash, steering vector contents), not just its spec:
        # resuming with other weights or another vector behind the same spec is refused.
        self.identity = config.identity(**self.plan.digests,
                                        model_identity=self.model.identity)
        # Only generated answers go through the response cache: logprob answers are one
        # cheap scoring call each.
        self.uses_cache = config.mode == "generate"

    def run_dir_identity(self) -> dict[str, Any]:
        # The directory name also covers the template's contents (the stored identity does
        # not, so runs stored before still resume with --out).
        return {**self.identity, "template_sha256": self.plan.template.sha256}

    def warnings(self) -> list[str]:
        return [BUNDLED_WARNING] if is_bundled(self.config.model, self.model) else []

    async def aclose(self) -> None:
        if self.owns_model:
            await self.model.aclose()

    def announce(self, ctx: RunContext, todo: int) -> None:
        plan, cfg = self.plan, self.config
        who = f"{len(plan.personas)} personas" if plan.personas else "the bare model"
        shaped = sum(r.shaping is not None for r in plan.respondents)
        ctx.display.say(
            f"survey: {plan.questionnaire.name} ({len(plan.items)} items), {who}"
            + (f" + {shaped} shaping conditions" if shaped else "")
            + f" × {len(plan.variants)} variant(s) in {cfg.mode} mode on {cfg.model}; "
            f"{todo} answers to get; run dir: {ctx.store.run_dir}")

    async def execute(self, ctx: RunContext) -> None:
        plan, cfg = self.plan, self.config
        stored = plan.stored(ctx.store)
        work = [(r, v) for r in plan.respondents for v in plan.variants]
        total = sum(len(r.items or plan.items) for r, _ in work)
        todo = sum(len([i for i in (r.items or plan.items) if i not in stored[(r.id, v.id)]])
                   for r, v in work)
        self.announce(ctx, todo)
        if not todo:
            return
        runner = Runner(self.model, cache=ctx.cache, concurrency=cfg.concurrency,
                        progress="off", label="survey")
        reporter = ProgressReporter("survey", todo, mode=cfg.progress,
                                    done_before=total - todo)
        try:
            for respondent, v in work:
                items = list(respondent.items or plan.items)
                done = stored[(respondent.id, v.id)]
                if all(i in done for i in items):
                    continue
                await administer(
                    self.model, plan.questionnaire, mode=cfg.mode,
                    system=respondent.system, variant=v, items=items, seed=cfg.seed,
                    runner=runner, block_size=cfg.block_size, done=done,
                    on_answer=lambda a, r=respondent: self.put(ctx.store, r, a),
                    failures=ctx.outcome.failures, progress=reporter)
        finally:
            reporter.close()
            ctx.outcome.model_calls += runner.stats.model_calls
            ctx.outcome.cache_hits += runner.stats.cache_hits

    def put(self, store: RunStore, respondent: Respondent, answer: ItemAnswer) -> None:
        shaping = respondent.shaping
        store.put("answer", answer_key(respondent.id, answer.variant, answer.item_id), {
            **answer.model_dump(mode="json"), "respondent": respondent.id,
            "persona_id": respondent.persona.id if respondent.persona else None,
            "shape_domain": shaping.domain if shaping else None,
            "shape_level": shaping.level if shaping else None,
            "model": self.config.model,
            "conditioning_hash": _digest(respondent.system or ""),
        })

    @classmethod
    def summarise(cls, store: RunStore, settings: RunSettings) -> dict[str, Any]:
        assert isinstance(settings, SurveyConfig)
        failures, notes = recorded_warnings(store)
        return build_summary(SurveyPlan(settings), store, failures=failures, notes=notes)


SurveyResult = RunResult  # the name run_survey's result had before the spine


def run_survey(config: SurveyConfig, out: str | Path | None = None, *, use_cache: bool = True,
               model: Model | None = None) -> RunResult:
    """Run (or resume) a survey and write its ``summary.json``.

    >>> import tempfile
    >>> from personae.models.scripted import ScriptedModel
    >>> m = ScriptedModel(choices={"1": 0.1, "2": 0.1, "3": 0.2, "4": 0.4, "5": 0.2})
    >>> cfg = SurveyConfig(model="scripted:doc", items=10, progress="off")
    >>> result = run_survey(cfg, tempfile.mkdtemp(), model=m, use_cache=False)
    >>> result.summary["scores"][0]["domains"]["E"]["value"]
    3.5
    >>> run_survey(cfg, result.run_dir, model=m, use_cache=False).model_calls  # resumed: done
    0
    """
    return run(SurveyKind(config, model=model), out, use_cache=use_cache)
