"""Per-turn judgements of a simulation: rubric fidelity and NLI against the persona facts
(by a judge model), and the persona-vector projection (on a white-box model).

Each judgement is stored (kinds ``fidelity``, ``nli``, ``projection``) under the turn's key,
so a re-run judges only what is missing. Closed-set answers are read from the judge's
probabilities where it has them, else from its words, as the eval does.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from personae.errors import CapabilityError, RunError
from personae.judge import describe
from personae.judge import nli as consistency
from personae.models import ChatParams, ChoiceScores, Message
from personae.models.base import NoChoiceMassError
from personae.runtime import ProgressReporter, Runner
from personae.runtime.store import RunStore
from personae.sim.agents import Agent, Turn, egocentric_view
from personae.sim.engine import turn_key

SCORES = ("1", "2", "3", "4", "5")
FIDELITY_PREFILL = "Score: "
MIN_COVERAGE = 0.5  # below this much mass on the choices, ask in words instead


def fidelity_messages(persona: str, partner: str | None, reply: str) -> list[Message]:
    """Ask a judge how well one conversation turn stays in character (1–5)."""
    context = f"The other person said: {partner}\n\n" if partner else ""
    return [
        Message(role="system", content=(
            "You grade role-play. Given a persona and one message the persona wrote in a "
            "conversation, rate how well the message stays in character on a 1-5 scale: "
            "5 = fully in character (the persona's voice, knowledge and facts), 3 = generic, "
            "could be anyone, 1 = out of character (contradicts the persona, or says it is an "
            "AI or a language model). Answer with one digit.")),
        Message(role="user", content=(
            f"Persona: {persona}\n\n{context}The persona's message: {reply}\n\n"
            "Score (1-5):")),
    ]


def parse_score(text: str) -> int | None:
    """The first digit 1–5 standing on its own in a judge's reply.

    >>> parse_score("Score: 4 - mostly in character")
    4
    >>> parse_score("I cannot say") is None
    True
    """
    found = re.search(r"(?<![\d.])([1-5])(?![\d.])", text)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class Job:
    kind: str
    key: str
    messages: list[Message]
    choices: tuple[str, ...]
    prefill: str
    base: dict[str, Any]
    from_scores: Callable[[ChoiceScores], float]
    from_text: Callable[[str], float | None]


def judge_jobs(turns: Sequence[Turn], agents: dict[str, Agent], *, metrics: Sequence[str],
               judge: str, max_facts: int) -> list[Job]:
    """The judgements the given turns need (scripted and empty turns need none)."""
    jobs: list[Job] = []
    previous: dict[str, Turn] = {}
    for t in turns:
        agent = agents.get(t.speaker)
        partner = previous.get(t.conversation_id)
        previous[t.conversation_id] = t
        if agent is None or agent.persona is None or t.scripted or not t.text:
            continue
        key = turn_key(t.conversation_id, t.index)
        base = {"conversation_id": t.conversation_id, "index": t.index, "speaker": t.speaker,
                "judge": judge}
        if "fidelity" in metrics:
            jobs.append(Job(
                "fidelity", f"{key}|{judge}",
                fidelity_messages(describe(agent.persona),
                                  partner.text if partner and partner.speaker != t.speaker
                                  else None, t.text),
                SCORES, FIDELITY_PREFILL, base,
                lambda s: 1.0 + s.expected_index,
                lambda text: None if (v := parse_score(text)) is None else float(v)))
        if "consistency" in metrics:
            for i, fact in enumerate(consistency.persona_facts(agent.persona)[:max_facts]):
                jobs.append(Job(
                    "nli", f"{key}|fact{i}|{judge}", consistency.nli_messages(t.text, fact),
                    consistency.LABELS, "", {**base, "fact": fact},
                    lambda s: float(consistency.label_value(s.top) or 0),
                    lambda text: (None if (lb := consistency.parse_label(text)) is None
                                  else float(consistency.label_value(lb) or 0))))
    return jobs


async def run_judgements(store: RunStore, runner: Runner, jobs: Sequence[Job], *,
                         failures: list[str], progress: str = "auto") -> None:
    """Run the jobs not stored yet, ``runner.concurrency`` at a time, storing each."""
    todo = [j for j in jobs if store.get(j.kind, j.key) is None]
    if not todo:
        return
    reporter = ProgressReporter("simulate: judging turns", len(todo), mode=progress,
                                done_before=len(jobs) - len(todo))
    pending = iter(todo)
    no_logprobs = no_prefill = False

    async def judge_one(job: Job) -> dict[str, Any]:
        nonlocal no_logprobs, no_prefill
        while not no_logprobs:
            prefill = "" if no_prefill else job.prefill
            try:
                scores = await runner.score_choices(job.messages, list(job.choices),
                                                    prefill=prefill)
            except CapabilityError:
                if prefill:  # a chat API cannot prefill, but may still give logprobs
                    no_prefill = True
                    continue
                no_logprobs = True
                break
            except NoChoiceMassError:
                break
            if scores.coverage < MIN_COVERAGE:
                break
            return {"value": job.from_scores(scores), "method": "logprobs",
                    "probs": scores.probs, "coverage": scores.coverage}
        reply = await runner.chat(job.messages, ChatParams(temperature=0.0, max_tokens=16))
        return {"value": job.from_text(reply.text), "method": "text", "raw": reply.text}

    async def worker() -> None:
        for job in pending:
            try:
                result = await judge_one(job)
            except RunError as exc:
                failures.append(f"judging {job.key}: {exc}")
                reporter.advance(failed=True)
                continue
            store.put(job.kind, job.key, {**job.base, **result})
            reporter.advance()

    try:
        await asyncio.gather(*(worker() for _ in range(runner.concurrency)))
    finally:
        reporter.close()


def project_turns(store: RunStore, model: Any, vector: Any, layer: int,
                  conversations: dict[str, list[Turn]], agents: dict[str, dict[str, Agent]],
                  *, window: int, progress: str = "auto", batch: int = 8) -> None:
    """Store the persona-vector projection of every persona turn, read as the reply to what
    its speaker saw (the same egocentric, windowed view)."""
    from personae.models.whitebox import score_responses

    items: list[tuple[str, list[Message], Turn]] = []
    for cid, turns in conversations.items():
        for i, t in enumerate(turns):
            agent = agents[cid].get(t.speaker)
            key = f"{turn_key(cid, t.index)}|L{layer}"
            if agent is None or agent.persona is None or not t.text or store.get(
                    "projection", key) is not None:
                continue
            items.append((key, egocentric_view(agent, turns[:i], window=window), t))
    if not items:
        return
    reporter = ProgressReporter("simulate: projections", len(items), mode=progress)
    try:
        for start in range(0, len(items), batch):
            chunk = items[start:start + batch]
            projections = score_responses(model, vector, layer,
                                          [(messages, t.text) for _, messages, t in chunk])
            for (key, _, t), proj in zip(chunk, projections, strict=True):
                store.put("projection", key, {"conversation_id": t.conversation_id,
                                              "index": t.index, "speaker": t.speaker,
                                              "layer": layer,
                                              "value": None if math.isnan(proj.mean)
                                              else proj.mean,
                                              "n_tokens": len(proj.per_token)})
                reporter.advance()
    finally:
        reporter.close()
