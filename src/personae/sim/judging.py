"""Per-turn judgements of a simulation: rubric fidelity and NLI against the persona facts
(by a judge model), and the persona-vector projection (on a white-box model).

Each judgement is stored (kinds ``fidelity``, ``nli``, ``projection``) under the turn's key,
so a re-run judges only what is missing. Closed-set answers are read from the judge's
probabilities where it has them, else from its words, as the eval does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from personae.judge import describe
from personae.judge import nli as consistency
from personae.judge.closed import ClosedAnswer, ClosedJudge, ClosedQuestion
from personae.judge.scores import parse_score
from personae.models import ChoiceScores, Message
from personae.models.whitebox import score_responses
from personae.runtime import ProgressReporter, Runner
from personae.runtime.pool import run_pool
from personae.runtime.store import Key, RunStore, encode_key
from personae.sim.agents import Agent, Turn, egocentric_view
from personae.sim.engine import turn_key

SCORES = ("1", "2", "3", "4", "5")
FIDELITY_PREFILL = "Score: "


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


@dataclass(frozen=True)
class Job:
    kind: str
    key: Key
    question: ClosedQuestion
    base: dict[str, Any]
    from_scores: Callable[[ChoiceScores], float]
    from_text: Callable[[str], float | None]

    def record(self, answer: ClosedAnswer) -> dict[str, Any]:
        """The stored judgement: the value and how it was read."""
        if answer.scores is not None:
            return {**self.base, "value": self.from_scores(answer.scores),
                    "method": "logprobs", "probs": answer.scores.probs,
                    "coverage": answer.scores.coverage}
        text = answer.text or ""
        return {**self.base, "value": self.from_text(text), "method": "text", "raw": text}


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
                "fidelity", (*key, judge),
                ClosedQuestion(fidelity_messages(describe(agent.persona),
                                                 partner.text if partner
                                                 and partner.speaker != t.speaker else None,
                                                 t.text),
                               SCORES, FIDELITY_PREFILL),
                base,
                lambda s: 1.0 + s.expected_index,
                lambda text: parse_score(text, first_digit=True)))
        if "consistency" in metrics:
            for i, fact in enumerate(consistency.persona_facts(agent.persona)[:max_facts]):
                jobs.append(Job(
                    "nli", (*key, f"fact{i}", judge),
                    ClosedQuestion(consistency.nli_messages(t.text, fact), consistency.LABELS),
                    {**base, "fact": fact},
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
    closed = ClosedJudge(runner)

    def stored(job: Job, answer: ClosedAnswer) -> None:
        store.put(job.kind, job.key, job.record(answer))
        reporter.advance()

    def failed(job: Job, exc: Exception) -> None:
        failures.append(f"judging {encode_key(job.key)}: {exc}")
        reporter.advance(failed=True)

    try:
        await run_pool(todo, lambda job: closed.ask(job.question), limit=runner.concurrency,
                       on_result=stored, on_failure=failed)
    finally:
        reporter.close()


def project_turns(store: RunStore, model: Any, vector: Any, layer: int,
                  conversations: dict[str, list[Turn]], agents: dict[str, dict[str, Agent]],
                  *, window: int, progress: str = "auto", batch: int = 8) -> None:
    """Store the persona-vector projection of every persona turn, read as the reply to what
    its speaker saw (the same egocentric, windowed view)."""
    items: list[tuple[str, list[Message], Turn]] = []
    for cid, turns in conversations.items():
        for i, t in enumerate(turns):
            agent = agents[cid].get(t.speaker)
            key = (*turn_key(cid, t.index), f"L{layer}")
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
