"""A survey run: a questionnaire put to personas (or the bare model) on one model, stored.

Respondents are the personas (or the bare model when there are none); with trait shaping,
every respondent is also asked under each Big Five domain at each of the nine levels, and
then answers only that domain's items. Every respondent answers every variant. Each answer
is written to the run store (kind ``answer``, key ``respondent|variant|item``) the moment it
arrives, so a killed run resumes where it stopped and a finished one makes no model calls.
The run directory then holds ``summary.json`` and ``report.html``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from personae._files import atomic_write
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
from personae.runtime import ProgressReporter, ResponseCache, Runner
from personae.runtime.settings import RunSettings
from personae.runtime.store import RunStore, summarise_once

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


def answer_key(respondent: str, variant: str, item_id: str) -> str:
    return f"{respondent}|{variant}|{item_id}"


@dataclass
class Outcome:
    model_calls: int = 0
    failures: list[str] = field(default_factory=list)


class SurveyRun:
    """One survey run bound to its store. ``await run()`` does (or finishes) the work."""

    def __init__(self, config: SurveyConfig, *, cache: ResponseCache | None = None,
                 model: Model | None = None) -> None:
        self.config = config
        self.cache = cache
        self.outcome = Outcome()
        # Everything that can be wrong with the input is found here, before a run directory
        # is made or a model call spent; `bind` then ties the run to its store.
        self.questionnaire = load_questionnaire(config.instrument)
        self.variants: list[Variant] = expand_variants(self.questionnaire, config.variants)
        all_items = [i.id for i in self.questionnaire.items]
        self.items = all_items[: config.items] if config.items else all_items
        self.personas: list[Persona] = []
        digests = {"questionnaire_digest": questionnaire_digest(self.questionnaire)}
        if config.personas is not None:
            personas = resolve_personas(config.personas)
            if not personas:
                raise InputError(f"{config.personas}: no personas")
            digests["personas_digest"] = _digest("\n".join(f"{p.id}:{p.content_hash()}"
                                                           for p in personas))
            self.personas = personas[: config.limit]
        self.template = load_template(config.template)
        if config.shape:
            self.check_shaping()
        self.respondents = self.plan_respondents()
        self.model = model if model is not None else load_model(config.model)
        # The model's identity (weights' hash, steering vector contents), not just its spec:
        # resuming with other weights or another vector behind the same spec is refused.
        digests["model_identity"] = self.model.identity
        self.identity = config.identity(**digests)
        self._store: RunStore | None = None

    def bind(self, store: RunStore) -> None:
        """Record the settings in ``store`` (or check they match the run stored there)."""
        store.bind_config(self.identity)
        self._store = store

    @property
    def store(self) -> RunStore:
        if self._store is None:
            raise RuntimeError("the survey run is not bound to a store")
        return self._store

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

    async def aclose(self) -> None:
        await self.model.aclose()

    def stored(self) -> dict[tuple[str, str], dict[str, ItemAnswer]]:
        out: dict[tuple[str, str], dict[str, ItemAnswer]] = defaultdict(dict)
        for _, rec in self.store.items("answer"):
            answer = ItemAnswer.model_validate({k: rec[k] for k in ItemAnswer.model_fields
                                                if k in rec})
            out[(rec["respondent"], rec["variant"])][rec["item_id"]] = answer
        return out

    def announce(self, todo: int) -> None:
        if self.config.progress == "off":
            return
        cfg = self.config
        who = f"{len(self.personas)} personas" if self.personas else "the bare model"
        shaped = sum(r.shaping is not None for r in self.respondents)
        print(f"survey: {self.questionnaire.name} ({len(self.items)} items), {who}"
              + (f" + {shaped} shaping conditions" if shaped else "")
              + f" × {len(self.variants)} variant(s) in {cfg.mode} mode on {cfg.model}; "
              f"{todo} answers to get; run dir: {self.store.run_dir}",
              file=sys.stderr, flush=True)

    async def run(self) -> None:
        stored = self.stored()
        plan = [(r, v) for r in self.respondents for v in self.variants]
        total = sum(len(r.items or self.items) for r, _ in plan)
        todo = sum(len([i for i in (r.items or self.items) if i not in stored[(r.id, v.id)]])
                   for r, v in plan)
        self.announce(todo)
        if not todo:
            return
        runner = Runner(self.model, cache=self.cache, concurrency=self.config.concurrency,
                        progress="off", label="survey")
        reporter = ProgressReporter("survey", todo, mode=self.config.progress,
                                    done_before=total - todo)
        try:
            for respondent, v in plan:
                items = list(respondent.items or self.items)
                done = stored[(respondent.id, v.id)]
                if all(i in done for i in items):
                    continue
                await administer(
                    self.model, self.questionnaire, mode=self.config.mode,
                    system=respondent.system, variant=v, items=items, seed=self.config.seed,
                    runner=runner, block_size=self.config.block_size, done=done,
                    on_answer=lambda a, r=respondent: self.put(r, a),
                    failures=self.outcome.failures, progress=reporter)
        finally:
            reporter.close()
            self.outcome.model_calls += runner.stats.model_calls

    def put(self, respondent: Respondent, answer: ItemAnswer) -> None:
        shaping = respondent.shaping
        self.store.put("answer", answer_key(respondent.id, answer.variant, answer.item_id), {
            **answer.model_dump(mode="json"), "respondent": respondent.id,
            "persona_id": respondent.persona.id if respondent.persona else None,
            "shape_domain": shaping.domain if shaping else None,
            "shape_level": shaping.level if shaping else None,
            "model": self.config.model,
            "conditioning_hash": _digest(respondent.system or ""),
        })


@dataclass
class SurveyResult:
    run_dir: Path
    summary: dict[str, Any]
    failures: list[str]
    model_calls: int
    warnings_shown: list[str] = field(default_factory=list)


def run_survey(config: SurveyConfig, out: str | Path | None = None, *, use_cache: bool = True,
               model: Model | None = None) -> SurveyResult:
    """Run (or resume) a survey and write ``summary.json`` and ``report.html``.

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
    run = SurveyRun(config, model=model)
    # The directory name also covers the template's contents (the stored identity does not,
    # so runs stored before still resume with --out).
    run_dir = Path(out) if out is not None else config.default_run_dir(
        {**run.identity, "template_sha256": run.template.sha256})
    store = RunStore(run_dir)
    cache = ResponseCache() if use_cache and config.mode == "generate" else None
    run.cache = cache
    start = time.monotonic()
    try:
        run.bind(store)
        shown = [BUNDLED_WARNING] if is_bundled(config.model, run.model) else []
        if shown and config.progress != "off":
            print(f"personae: warning: {BUNDLED_WARNING}", file=sys.stderr, flush=True)

        async def main() -> None:
            try:
                await run.run()
            finally:
                if model is None:
                    await run.aclose()

        asyncio.run(main())
        summary = summarise_once(
            store, [store.counts(), config.items, config.limit], start,
            failed=bool(run.outcome.failures),
            write=lambda elapsed: write_outputs(run, failures=run.outcome.failures,
                                                duration_s=elapsed))
        return SurveyResult(run_dir, summary, run.outcome.failures, run.outcome.model_calls,
                            shown)
    finally:
        store.close()
        if cache is not None:
            cache.close()


def write_outputs(run: SurveyRun, *, failures: list[str] | None = None,
                  duration_s: float | None = None) -> dict[str, Any]:
    """(Re)write ``summary.json`` and ``report.html`` from the stored answers."""
    from personae.report.survey import write_survey_report
    from personae.survey.summary import build_summary

    store = run.store
    if duration_s is None:
        duration_s = float(store.get_meta("duration_s") or 0)
    summary = build_summary(run, failures=failures or [], duration_s=duration_s)
    atomic_write(store.run_dir / "summary.json",
                 json.dumps(summary, indent=2, ensure_ascii=False))
    write_survey_report(summary, store.run_dir)
    return summary

