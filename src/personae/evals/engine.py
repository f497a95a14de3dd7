"""The eval run: personas × probes × conditions on a subject model, then judges.

Stages run one after another (probes, responses, score examples, rubric grading, reliability
checks, NLI, atomic judgements); inside a stage, calls run concurrently through the runtime's
`Runner` (cache, retries, backpressure). Each completed call is written to the run store
before more work is scheduled, under a key naming what produced it, and every stage first
drops the keys already stored. Re-running the same command therefore resumes where a killed
run stopped, and a finished run makes no model calls at all.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

from personae.errors import InputError, RunError
from personae.evals import atomic, personagym, reliability
from personae.evals.config import ASSISTANT_PROMPT, CONDITIONS, EvalConfig
from personae.evals.probes import Probe, benchmark_probes, load_question_file, make_probes
from personae.judge import describe
from personae.judge import nli as consistency
from personae.judge.choices import parse_letter
from personae.judge.closed import ClosedAnswer, ClosedJudge, ClosedQuestion
from personae.models import ChatParams, ChoiceScores, Completion, Message, Model, load_model
from personae.persona import Persona, Template, load_template, render_system_prompt
from personae.persona.sample import resolve_personas
from personae.runtime import ChatRequest, ResponseCache, Runner
from personae.runtime.pool import run_pool
from personae.runtime.progress import ProgressReporter
from personae.runtime.spine import Display, Outcome
from personae.runtime.store import Key, RunStore, StoredKeys, encode_key

Records = list[tuple[str, Key | str, dict[str, Any]]]  # (record kind, key, record)


@dataclass
class ChatJob:
    """One model call and how to turn its completion into stored records."""

    keys: list[tuple[str, Key | str]]  # (record kind, key) of each record it yields
    messages: list[Message]
    params: ChatParams
    records: Callable[[Completion], Records]


@dataclass
class ClosedJob:
    """A closed-set judgement (an NLI label, a persona letter), asked through `ClosedJudge`:
    read from the judge's probabilities where it has them, else generated and parsed.
    ``field`` of the record gets the chosen value (None when the answer is outside the set:
    counted as unparsable)."""

    kind: str
    key: Key
    question: ClosedQuestion
    base: dict[str, Any]
    field: str
    from_scores: Callable[[ChoiceScores], Any]
    from_text: Callable[[str], Any]


def short_hash(text: str, length: int = 12) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def personas_digest(personas: Sequence[Persona]) -> str:
    return short_hash("\n".join(f"{p.id}:{p.content_hash()}" for p in personas), 16)


def load_run_personas(config: EvalConfig) -> tuple[list[Persona], str]:
    """The personas of a run (after ``limit``) and the digest of the whole set."""
    personas = resolve_personas(config.personas)
    if not personas:
        raise InputError(f"{config.personas}: no personas")
    return personas[: config.limit], personas_digest(personas)


class ResponseKey(NamedTuple):
    """The key of a subject response; records about a response extend it."""

    probe_id: str
    condition: str
    sample: int


def response_key(probe: Probe, condition: str, sample: int = 0) -> ResponseKey:
    return ResponseKey(probe.id, condition, sample)


def subject_messages(persona: Persona, condition: str, question: str,
                     template: str | Template) -> list[Message]:
    """The messages an eval sends the subject for ``question`` under ``condition``, rendered
    with ``template`` (a template name or a loaded one); no model needed, so what was sent
    can be rebuilt from a run's settings (`personae.evals.training` does).

    >>> [m.role for m in subject_messages(Persona(name="Ana"), "persona", "Hi?", "card")]
    ['system', 'user']
    >>> subject_messages(Persona(name="Ana"), "no_persona", "Hi?", "card")[0].role
    'user'
    """
    user = Message(role="user", content=question)
    if condition == "persona":
        return [Message(role="system", content=render_system_prompt(persona, template)), user]
    if condition == "assistant":
        return [Message(role="system", content=ASSISTANT_PROMPT), user]
    return [user]


def subject_samples(condition: str, samples: int) -> range:
    """The sample indices a run asks of the subject under ``condition``: extra samples are
    drawn for the persona condition only (controls are a baseline, one answer each).

    >>> list(subject_samples("persona", 3)), list(subject_samples("assistant", 3))
    ([0, 1, 2], [0])
    """
    return range(samples if condition == "persona" else 1)


class EvalRun:
    """One eval run. ``bind(store)`` ties it to its run directory (the constructor does when
    given a store); ``await run()`` then does (or finishes) the work."""

    def __init__(self, config: EvalConfig, store: RunStore | None = None, *,
                 cache: ResponseCache | None = None,
                 models: dict[str, Model] | None = None, rescore: bool = False) -> None:
        self.config = config
        self.cache = cache
        self.rescore = rescore
        self.outcome = Outcome()
        self.display = Display(quiet=config.progress == "off")
        self._models: dict[str, Model] = dict(models or {})
        # Everything that can be wrong with the input is found here, files first, then the
        # models: before the run binds its directory or spends a single model call.
        self.personas, self.personas_digest = load_run_personas(config)
        self.template = load_template(config.template)  # compiled once, not per prompt
        self.question_file = (load_question_file(config.questions)
                              if config.questions not in ("auto", "benchmark-v1", "generate")
                              else None)
        self.identity = config.identity(personas_digest=self.personas_digest)
        if self.question_file is not None:
            self.identity["questions_digest"] = short_hash(json.dumps(self.question_file,
                                                                      sort_keys=True))
        self.static_probes: list[Probe] = []
        self.to_generate: list[Persona] = []
        if not rescore:
            self.static_probes, self.to_generate = self.plan_probes()
        for spec in ([] if rescore else [config.model]) + config.judges:  # rescore: no subject
            self.model(spec)
        self.by_id = {p.id: p for p in self.personas}
        self.subject_params = ChatParams(temperature=config.temperature,
                                         max_tokens=config.max_tokens, seed=config.seed)
        self.judge_params = ChatParams(temperature=config.judge_temperature,
                                       max_tokens=config.judge_max_tokens, seed=config.seed)
        if store is not None:
            self.bind(store)

    def bind(self, store: RunStore) -> None:
        """Record the settings in ``store``, or check they match the run stored there."""
        self.store = store
        if not self.rescore:
            store.bind_config(self.identity)
            return
        stored = store.config()
        if stored.get("personas_digest") != self.personas_digest:
            raise InputError(f"{self.config.personas}: the personas changed since the run in "
                             f"{store.run_dir}; rescoring would judge old responses against "
                             "new descriptions")
        # Rescoring judges the run's own personas (``limit`` is not part of the stored
        # settings), so role identification offers the same population as the run did.
        in_run = {r["persona_id"] for _, r in store.items("probe")}
        self.personas = [p for p in self.personas if p.id in in_run]
        self.by_id = {p.id: p for p in self.personas}
        self.identity = {**stored, "judges": self.config.judges}

    # -- models --------------------------------------------------------------------------
    def model(self, spec: str) -> Model:
        if spec not in self._models:  # subject and judge share one instance when equal
            self._models[spec] = load_model(spec)
        return self._models[spec]

    def model_identities(self) -> dict[str, str]:
        """Each loaded model's identity (weights' hash, steering), by spec."""
        return {spec: m.identity for spec, m in self._models.items()}

    @property
    def judge(self) -> str:
        """The judge that writes score examples, NLI, role and atom judgements."""
        return self.config.judges[0]

    async def aclose(self) -> None:
        for m in self._models.values():
            await m.aclose()

    # -- stage runners -------------------------------------------------------------------
    async def chat_stage(self, label: str, spec: str, jobs: Iterable[ChatJob]) -> None:
        stored: dict[str, StoredKeys] = {}
        for job in (jobs := list(jobs)):
            for kind, _ in job.keys:
                if kind not in stored:
                    stored[kind] = self.store.keys(kind)
        todo = [j for j in jobs if not all(key in stored[k] for k, key in j.keys)]
        if not todo:
            return
        runner = Runner(self.model(spec), cache=self.cache, concurrency=self.config.concurrency,
                        progress=self.config.progress, label=label)
        requests = (ChatRequest(tuple(j.messages), j.params, tag=j) for j in todo)
        async for result in runner.iter_chats(requests, total=len(todo),
                                              done_before=len(jobs) - len(todo)):
            if result.completion is None:
                self.outcome.failures.append(f"{label}: {result.error}")
                continue
            job: ChatJob = result.request.tag  # type: ignore[assignment]
            for kind, key, data in job.records(result.completion):
                self.store.put(kind, key, data)
        self.outcome.model_calls += runner.stats.model_calls
        self.outcome.cache_hits += runner.stats.cache_hits

    async def closed_stage(self, label: str, spec: str, jobs: list[ClosedJob]) -> None:
        stored = {kind: self.store.keys(kind) for kind in {j.kind for j in jobs}}
        todo = [j for j in jobs if j.key not in stored[j.kind]]
        params = self.judge_params.model_copy(update={"max_tokens": 16})
        if todo:
            todo = await self.score_stage(label, spec, todo, params,
                                          done_before=len(jobs) - len(todo))
        await self.chat_stage(label, spec, (
            ChatJob([(j.kind, j.key)], list(j.question.messages), params,
                    lambda c, j=j: [(j.kind, j.key, {**j.base, j.field: j.from_text(c.text),
                                                     "method": "text", "raw": c.text})])
            for j in todo))

    async def score_stage(self, label: str, spec: str, todo: list[ClosedJob],
                          words: ChatParams, *, done_before: int = 0) -> list[ClosedJob]:
        """Read ``todo`` from the judge's probabilities (`ClosedJudge.read`). Returns the
        jobs to ask in words instead, which `chat_stage` then sends in batches."""
        runner = Runner(self.model(spec), concurrency=self.config.concurrency, progress="off",
                        label=label)
        closed = ClosedJudge(runner, words=words)
        if closed.no_logprobs:
            return todo
        reporter = ProgressReporter(label, len(todo), mode=self.config.progress,
                                    done_before=done_before)
        in_words: list[ClosedJob] = []

        def stored(job: ClosedJob, answer: ClosedAnswer) -> None:
            if answer.scores is None:
                in_words.append(job)
                return
            self.store.put(job.kind, job.key, {
                **job.base, job.field: job.from_scores(answer.scores), "method": "logprobs",
                "probs": answer.scores.probs, "coverage": answer.scores.coverage})
            reporter.advance()

        def failed(job: ClosedJob, exc: Exception) -> None:
            self.outcome.failures.append(f"{label}: {exc}")
            reporter.advance(failed=True)

        try:
            await run_pool(todo, lambda job: closed.read(job.question),
                           limit=runner.concurrency, on_result=stored, on_failure=failed)
        finally:
            reporter.close()
            self.outcome.model_calls += runner.stats.model_calls
        return in_words

    # -- the run -------------------------------------------------------------------------
    async def run(self) -> None:
        if self.rescore:
            probes = [Probe(**r) for _, r in self.store.items("probe")
                      if r["persona_id"] in self.by_id]
        else:
            probes = await self.build_probes()
            self.announce(probes)
            await self.run_responses(probes)
        suites = self.config.suites
        if "fidelity" in suites:
            await self.run_fidelity(probes)
        if "consistency" in suites:
            await self.run_consistency(probes)
        if "atomic" in suites:
            await self.run_atomic(probes)
        if self.rescore:  # only now: a failed rescore leaves the run as it was
            self.store.set_meta("config", json.dumps(self.identity, sort_keys=True))

    def announce(self, probes: Sequence[Probe]) -> None:
        if self.config.progress == "off":
            return
        cfg = self.config
        self.display.say(f"eval: {len(self.personas)} personas, {len(probes)} probes × "
                         f"{len(CONDITIONS)} conditions × {cfg.samples} sample(s) on "
                         f"{cfg.model}; judges: {', '.join(cfg.judges)}; suites: "
                         f"{', '.join(cfg.suites)}; run dir: {self.store.run_dir}")

    # -- probes --------------------------------------------------------------------------
    def plan_probes(self) -> tuple[list[Probe], list[Persona]]:
        """Probes known without a model (benchmark-v1, a question file), and the personas
        whose probes the judge must write."""
        cfg = self.config
        probes: list[Probe] = []
        to_generate: list[Persona] = []
        for p in self.personas:
            if self.question_file is not None:
                probes += [pr for t in cfg.tasks if t in self.question_file
                           for pr in make_probes(p, t, self.question_file[t][: cfg.per_task],
                                                 "file")]
                continue
            found = None if cfg.questions == "generate" else benchmark_probes(p, cfg.tasks,
                                                                               cfg.per_task)
            if found is None and cfg.questions == "benchmark-v1":
                raise InputError(f"persona {p.id!r} is not one of PersonaGym's benchmark-v1 "
                                 "personas; use --questions generate (or auto)")
            if found is None:
                to_generate.append(p)
            else:
                probes += found
        if not probes and not to_generate:
            raise InputError(f"{cfg.questions}: no questions for the tasks "
                             f"{', '.join(cfg.tasks)}")
        return probes, to_generate

    async def build_probes(self) -> list[Probe]:
        probes = list(self.static_probes)
        if self.to_generate:
            probes += await self.generate_probes(self.to_generate)
        for probe in probes:
            self.store.put("probe", probe.id, probe.model_dump())
        # The questions of a probe are those stored first (a resumed run grades the answers
        # to the questions that were asked).
        stored = {k: Probe(**r) for k, r in self.store.items("probe")}
        probes = [stored.get(p.id, p) for p in probes]
        if not probes:
            raise RunError("the judge wrote no usable question for any persona; use a "
                           "capable --judge, or --questions FILE")
        return probes

    async def generate_probes(self, personas: list[Persona]) -> list[Probe]:
        """PersonaGym's dynamic path: the judge picks settings, then writes questions."""
        cfg = self.config
        params = self.judge_params.model_copy(update={"temperature": max(cfg.judge_temperature,
                                                                          0.7)})
        await self.chat_stage("settings", self.judge, (
            ChatJob([("settings", p.id)], personagym.settings_messages(describe(p)), params,
                    lambda c, p=p: [("settings", p.id, {
                        "raw": c.text, "settings": personagym.parse_settings(c.text)})])
            for p in personas))
        jobs = []
        for p in personas:
            settings = (self.store.get("settings", p.id) or {}).get("settings", [])
            for task in cfg.tasks:
                key = (p.id, task)
                jobs.append(ChatJob(
                    [("questions", key)],
                    personagym.question_messages(describe(p), task, settings, n=cfg.per_task),
                    params,
                    lambda c, key=key: [("questions", key, {
                        "raw": c.text,
                        "questions": personagym.parse_questions(c.text, n=cfg.per_task)})]))
        await self.chat_stage("questions", self.judge, jobs)
        probes: list[Probe] = []
        for p in personas:
            for task in cfg.tasks:
                stored = self.store.get("questions", (p.id, task)) or {}
                questions = stored.get("questions", [])
                if not questions and stored:
                    self.outcome.notes.append(
                        f"the judge wrote no usable question for {p.id!r}, {task}")
                probes += make_probes(p, task, questions, "generated")
        return probes

    # -- responses -----------------------------------------------------------------------
    def subject_messages(self, persona: Persona, condition: str, question: str) -> list[Message]:
        return subject_messages(persona, condition, question, self.template)

    async def run_responses(self, probes: list[Probe]) -> None:
        jobs = []
        for probe in probes:
            persona = self.by_id[probe.persona_id]
            for condition in CONDITIONS:
                # Extra samples feed atomic RC and preference pairs (evals.training).
                for sample in subject_samples(condition, self.config.samples):
                    key = response_key(probe, condition, sample)
                    params = self.subject_params.model_copy(update={"sample_index": sample})
                    messages = self.subject_messages(persona, condition, probe.question)
                    system = messages[0].content if messages[0].role == "system" else ""
                    jobs.append(ChatJob([("response", key)], messages, params, partial(
                        self.response_record, key, probe, condition, sample, system)))
        await self.chat_stage("responses", self.config.model, jobs)

    def response_record(self, key: ResponseKey, probe: Probe, condition: str, sample: int,
                        system: str, c: Completion) -> Records:
        return [("response", key, {
            "persona_id": probe.persona_id, "probe_id": probe.id, "task": probe.task,
            "condition": condition, "sample": sample, "question": probe.question,
            "text": c.text, "model": self.config.model, "seed": self.config.seed,
            "conditioning_hash": short_hash(system), "finish_reason": c.finish_reason,
            "completion_tokens": c.completion_tokens, "latency_s": c.latency_s})]

    def responses(self, probes: Sequence[Probe], conditions: Sequence[str] = CONDITIONS,
                  samples: Sequence[int] = (0,)
                  ) -> list[tuple[ResponseKey, Probe, dict[str, Any]]]:
        """Stored responses (key, probe, record) in probe order; missing ones are skipped."""
        out = []
        for probe in probes:
            for condition in conditions:
                for sample in samples:
                    key = response_key(probe, condition, sample)
                    rec = self.store.get("response", key)
                    if rec is not None:
                        out.append((key, probe, rec))
        return out

    # -- fidelity ------------------------------------------------------------------------
    async def run_fidelity(self, probes: list[Probe]) -> None:
        await self.chat_stage("score examples", self.judge, (
            ChatJob([("examples", self.examples_key(probe))], personagym.score_examples_messages(
                describe(self.by_id[probe.persona_id]), probe.question, probe.task),
                self.judge_params,
                lambda c, probe=probe: [("examples", self.examples_key(probe), {
                    "probe_id": probe.id, "judge": self.judge, "text": c.text,
                    "complete": personagym.split_examples(c.text) is not None})])
            for probe in probes))
        # Everything below works from the planned keys, not from what happens to be stored,
        # so a run that lost a call yesterday draws the same sample and batches today. Every
        # sample is graded, so samples of one probe can be ranked against each other
        # (evals.training); the summary's numbers stay on sample 0.
        planned = [(response_key(probe, condition, sample), probe)
                   for probe in probes for condition in CONDITIONS
                   for sample in subject_samples(condition, self.config.samples)]
        for judge in self.config.judges:
            await self.chat_stage(f"grading ({judge})", judge,
                                  self.grading_jobs(planned, judge, "main"))
        sample = self.reliability_sample(planned)
        if sample:
            for variant in ("reversed", "retest1", "retest2"):
                await self.chat_stage(f"reliability: {variant}", self.judge,
                                      self.grading_jobs(sample, self.judge, variant))
            await self.run_role_identification(sample)

    def examples_key(self, probe: Probe) -> Key:
        return (probe.id, self.judge)

    def reliability_sample(self, planned: Sequence[tuple[ResponseKey, Probe]]
                           ) -> list[tuple[ResponseKey, Probe]]:
        own = [item for item in planned if item[0][1:] == ("persona", 0)]
        k = min(self.config.reliability_sample, len(own))
        # In the order of the stored keys' text, as runs have always drawn it.
        return sorted(random.Random(self.config.seed).sample(own, k),
                      key=lambda r: encode_key(r[0]))

    def grading_jobs(self, planned: Sequence[tuple[ResponseKey, Probe]], judge: str,
                     variant: str) -> list[ChatJob]:
        params = self.judge_params
        if variant.startswith("retest"):
            # Two independent samples at temperature 1: would the judge say the same again?
            params = params.model_copy(update={"temperature": 1.0,
                                               "sample_index": int(variant[-1])})
        reverse = variant == "reversed"
        # A batch holds one sample index, so sample 0 is graded in the same company with
        # or without extra samples (the judge sees the same batch, the cache still holds).
        groups: dict[tuple[str, str, int], list[tuple[ResponseKey, Probe]]] = {}
        for key, probe in planned:
            groups.setdefault((probe.persona_id, key.condition, key.sample), []).append(
                (key, probe))
        size = self.config.judge_batch
        jobs = []
        for group in groups.values():
            for start in range(0, len(group), size):
                chunk = group[start:start + size]
                batch = [(key, probe, self.store.get("response", key)) for key, probe in chunk]
                examples = [self.store.get("examples", self.examples_key(p)) for _, p in chunk]
                if any(rec is None for _, _, rec in batch) or any(e is None for e in examples):
                    continue  # its response or score examples failed: counted there, retried
                if reverse:
                    batch = batch[::-1]
                jobs.append(self.grading_job(batch, judge, variant, params, reverse))
        return jobs

    def grading_job(self, batch: list[tuple[ResponseKey, Probe, dict[str, Any]]], judge: str,
                    variant: str, params: ChatParams, reverse: bool) -> ChatJob:
        items = []
        for _, probe, rec in batch:
            examples = self.store.get("examples", self.examples_key(probe)) or {}
            items.append(personagym.GradingItem(
                probe.task, describe(self.by_id[probe.persona_id]), probe.question,
                rec["text"], personagym.order_examples(examples.get("text", ""),
                                                       reverse=reverse)))
        keys: list[tuple[str, Key | str]] = [("judgement", (*key, judge, variant))
                                             for key, _, _ in batch]

        def records(c: Completion) -> Records:
            scores = personagym.parse_batch_scores(c.text, len(batch))
            return [("judgement", jkey, {
                "response_key": encode_key(key), "persona_id": rec["persona_id"],
                "probe_id": probe.id, "task": probe.task, "condition": rec["condition"],
                "sample": rec["sample"], "judge": judge,
                "variant": variant, "score": score, "raw": c.text, "batch_size": len(batch),
                "rubric_hash": short_hash(personagym.rubric(probe.task)), "seed": params.seed,
            }) for (_, jkey), (key, probe, rec), score in zip(keys, batch, scores, strict=True)]

        return ChatJob(keys, personagym.grading_messages(items), params, records)

    async def run_role_identification(self, sample: Sequence[tuple[ResponseKey, Probe]]
                                      ) -> None:
        if len(self.personas) < 2:
            return
        descriptions = [describe(p) for p in self.personas]
        index = {p.id: i for i, p in enumerate(self.personas)}
        k = min(self.config.role_options, len(self.personas))
        letters = [chr(ord("A") + i) for i in range(k)]
        jobs = []
        for key, probe in sample:
            rec = self.store.get("response", key)
            if rec is None:
                continue
            offered, answer = reliability.role_options(
                index[probe.persona_id], descriptions, k=k,
                seed=f"{self.config.seed}|{encode_key(key)}")
            jobs.append(ClosedJob(
                "role", (*key, self.judge),
                ClosedQuestion(reliability.role_messages([descriptions[i] for i in offered],
                                                         probe.question, rec["text"]),
                               letters),
                {"response_key": encode_key(key), "persona_id": probe.persona_id,
                 "judge": self.judge, "options": [self.personas[i].id for i in offered], "answer": answer},
                "chosen", lambda s: letters.index(s.top),
                lambda text: parse_letter(text, k)))
        await self.closed_stage("reliability: role identification", self.judge, jobs)

    # -- consistency ---------------------------------------------------------------------
    async def run_consistency(self, probes: list[Probe]) -> None:
        jobs = []
        for key, probe, rec in self.responses(probes, CONDITIONS,
                                              range(self.config.samples)):
            facts = consistency.persona_facts(self.by_id[probe.persona_id])
            for i, fact in enumerate(facts[: self.config.max_facts]):
                jobs.append(ClosedJob(
                    "nli", (*key, f"fact{i}", self.judge),
                    ClosedQuestion(consistency.nli_messages(rec["text"], fact),
                                   consistency.LABELS),
                    {"response_key": encode_key(key), "persona_id": probe.persona_id,
                     "condition": rec["condition"], "sample": rec["sample"], "fact": fact,
                     "judge": self.judge},
                    "label", lambda s: s.top, consistency.parse_label))
        await self.closed_stage("consistency (NLI)", self.judge, jobs)

    # -- atomic --------------------------------------------------------------------------
    async def run_atomic(self, probes: list[Probe]) -> None:
        jobs = []
        for key, probe, rec in self.responses(probes, ("persona",),
                                              range(self.config.samples)):
            target = target_trait(self.by_id[probe.persona_id])
            if target is None:
                continue
            trait, _ = target
            for i, atom in enumerate(atomic.split_atoms(rec["text"])):
                akey = (*key, f"atom{i}", trait, self.judge)
                jobs.append(ChatJob(
                    [("atom", akey)], atomic.atom_judge_messages(trait, atom,
                                                                 question=probe.question),
                    self.judge_params,
                    lambda c, akey=akey, key=key, probe=probe, rec=rec, i=i, atom=atom, trait=trait:
                    [("atom", akey, {
                        "response_key": encode_key(key), "persona_id": probe.persona_id,
                        "probe_id": probe.id, "sample": rec["sample"], "index": i,
                        "atom": atom, "trait": trait, "judge": self.judge,
                        "score": atomic.parse_atom_score(c.text), "raw": c.text})]))
        await self.chat_stage("atomic judgements", self.judge, jobs)


_TRAIT_LETTERS = {"openness": "O", "conscientiousness": "C", "extraversion": "E",
                  "agreeableness": "A", "neuroticism": "N"}


def target_trait(persona: Persona) -> tuple[str, str] | None:
    """The persona's most pronounced Big Five target as (letter, "low"|"neutral"|"high").

    Atomic fidelity scores one target trait per persona, as the paper does; the most
    extreme one tells most about whether the persona comes through.
    """
    if persona.traits is None or not persona.traits.as_dict():
        return None
    name, level = max(persona.traits.as_dict().items(), key=lambda kv: abs(kv[1] - 3))
    bin_ = "low" if level < 7 / 3 else "high" if level >= 11 / 3 else "neutral"
    return _TRAIT_LETTERS[name], bin_
