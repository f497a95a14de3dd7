"""The conversation engine: turns taken one after another, each stored before the next.

A conversation is sequential (each turn answers the ones before it); many conversations run
at once, at most ``concurrency`` of them, so the model sees at most that many requests in
flight. Every turn is written to the run store (kind ``turn``, key (conversation, index))
the moment it exists, and a stopped conversation gets an ``end`` record with the reason. A
killed run therefore resumes each conversation at its next turn, and only the last
``window`` turns of each are ever held in memory.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from personae.errors import RunError
from personae.judge.choices import parse_letter
from personae.judge.closed import ClosedAnswer, ClosedJudge, ClosedQuestion
from personae.models import ChatParams, Message
from personae.runtime import ProgressReporter, Runner
from personae.runtime.pool import run_pool
from personae.runtime.store import Key, RunStore
from personae.sim.agents import Agent, Turn, clean_reply, egocentric_view
from personae.sim.termination import REPEAT_RATIO, StopReason, is_repetition, stop_reason

Policy = Literal["round-robin", "judge"]


@dataclass(frozen=True)
class ConversationPlan:
    """A conversation to hold: who takes part (the first agent speaks first) and its seed."""

    id: str
    agents: tuple[Agent, ...]
    seed: int = 0


def turn_key(conversation_id: str, index: int) -> Key:
    # Zero-padded as runs have always stored it, so they resume.
    return (conversation_id, f"{index:05d}")


@dataclass
class ConversationState:
    """What a conversation needs to go on: the last ``window`` turns, not all of them."""

    plan: ConversationPlan
    window: int
    repeat_ratio: float = REPEAT_RATIO
    recent: deque[Turn] = field(init=False)
    n_turns: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    last_text: dict[str, str] = field(default_factory=dict)  # each speaker's latest line
    stop_reason: str | None = None
    repeated: bool = False  # whether the latest turn repeated an earlier one

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=self.window + 1 if self.window > 0 else None)

    def add(self, turn: Turn) -> None:
        """Take ``turn`` in, noting whether it loops: a model's line that is near-identical
        to the turn before it or to the speaker's own last line (a script may repeat)."""
        earlier = [self.recent[-1].text if self.recent else None,
                   self.last_text.get(turn.speaker)]
        self.repeated = not turn.scripted and is_repetition(turn.text, earlier,
                                                            ratio=self.repeat_ratio)
        self.recent.append(turn)
        self.n_turns = turn.index + 1
        self.counts[turn.speaker] = turn.turn
        self.last_text[turn.speaker] = turn.text

    @property
    def last_speaker(self) -> str | None:
        return self.recent[-1].speaker if self.recent else None


def load_states(store: RunStore, plans: Sequence[ConversationPlan], window: int,
                repeat_ratio: float = REPEAT_RATIO) -> dict[str, ConversationState]:
    """Each conversation's state as stored (empty for the ones not started). A conversation
    whose last turn was stored without its end record (killed in between) has no
    ``stop_reason`` yet: `Engine.run` works it out again from that turn."""
    states = {p.id: ConversationState(p, window, repeat_ratio) for p in plans}
    for _, rec in store.items("turn"):
        state = states.get(rec["conversation_id"])
        if state is not None:
            state.add(Turn.model_validate(rec))
    for key, rec in store.items("end"):
        if key in states:
            states[key].stop_reason = rec["stop_reason"]
    return states


@dataclass
class Engine:
    """Holds conversations against one speaker model (and a judge for the next-speaker
    policy), writing every turn to ``store``."""

    store: RunStore
    runner: Runner
    params: ChatParams
    max_turns: int
    window: int
    policy: Policy = "round-robin"
    judge: Runner | None = None
    failures: list[str] = field(default_factory=list)
    on_turn: Callable[[Turn], None] | None = None
    repeat_ratio: float = REPEAT_RATIO  # word-sequence similarity that counts as a loop
    # The judge's closed questions, sharing across conversations whether it gives logprobs.
    closed: ClosedJudge | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.judge is not None:
            self.closed = ClosedJudge(self.judge)

    async def run(self, plans: Sequence[ConversationPlan], *, concurrency: int,
                  progress: str = "auto") -> dict[str, ConversationState]:
        states = load_states(self.store, plans, self.window, self.repeat_ratio)
        for state in states.values():
            if state.stop_reason is None and state.recent:
                self.check_stop(state)
        todo = [s for s in states.values() if s.stop_reason is None]
        reporter = ProgressReporter("simulate: turns",
                                    sum(self.max_turns - s.n_turns for s in todo), mode=progress,
                                    done_before=sum(s.n_turns for s in states.values()))
        try:
            # converse() records a failed turn itself, so anything it raises is a bug: stop.
            await run_pool(todo, lambda state: self.converse(state, reporter),
                           limit=max(1, concurrency), catch=())
        finally:
            reporter.close()
        return states

    async def converse(self, state: ConversationState, reporter: ProgressReporter) -> None:
        while state.stop_reason is None:
            try:
                turn = await self.step(state)
            except RunError as exc:  # stop this one; a re-run resumes it at this turn
                self.failures.append(f"{state.plan.id} turn {state.n_turns}: {exc}")
                reporter.advance(failed=True)
                reporter.add_total(-(self.max_turns - state.n_turns - 1))
                return
            if turn is not None:
                reporter.advance(cached=turn.cached)
            if state.stop_reason is not None:
                reporter.add_total(-(self.max_turns - state.n_turns))

    async def step(self, state: ConversationState) -> Turn | None:
        """Take the next turn and store it; None when a scripted speaker has no line left."""
        plan = state.plan
        index = state.n_turns
        speaker = await self.next_speaker(state)
        own = state.counts.get(speaker.id, 0) + 1
        started = time.time()
        if speaker.script is not None:
            if own > len(speaker.script):
                self.stop(state, "script_end")
                return None
            text, ended = clean_reply(speaker.script[own - 1], speaker.name)
            turn = Turn(conversation_id=plan.id, index=index, turn=own, speaker=speaker.id,
                        name=speaker.name, role=speaker.role, text=text, end_signal=ended,
                        started=started, scripted=True)
        else:
            messages = egocentric_view(speaker, list(state.recent), window=self.window)
            params = self.params.model_copy(update={"seed": plan.seed})
            completion = await self.runner.chat(messages, params)
            text, ended = clean_reply(completion.text, speaker.name)
            turn = Turn(conversation_id=plan.id, index=index, turn=own, speaker=speaker.id,
                        name=speaker.name, role=speaker.role, text=text, end_signal=ended,
                        started=started, latency_s=round(time.time() - started, 4),
                        finish_reason=completion.finish_reason,
                        completion_tokens=completion.completion_tokens,
                        cached=completion.cached)
        self.store.put("turn", turn_key(plan.id, index), turn.model_dump(mode="json"))
        state.add(turn)
        if self.on_turn is not None:
            self.on_turn(turn)
        self.check_stop(state)
        return turn

    def check_stop(self, state: ConversationState) -> None:
        """Stop the conversation if its latest turn ends it. Also run on resume: the same
        answer whether or not the process died between the turn and its end record."""
        reason = stop_reason(end_signal=state.recent[-1].end_signal, repeated=state.repeated,
                             n_turns=state.n_turns, max_turns=self.max_turns)
        if reason is not None:
            self.stop(state, reason)

    def stop(self, state: ConversationState, reason: StopReason) -> None:
        state.stop_reason = reason
        self.store.put("end", state.plan.id, {"conversation_id": state.plan.id,
                                              "stop_reason": reason,
                                              "n_turns": state.n_turns})

    async def next_speaker(self, state: ConversationState) -> Agent:
        agents = state.plan.agents
        if len(agents) == 1:
            return agents[0]
        last = state.last_speaker
        if last is None:
            return agents[0]
        if self.policy == "judge" and len(agents) > 2 and self.judge is not None:
            return await self.judged_speaker(state)
        i = next(k for k, a in enumerate(agents) if a.id == last)
        return agents[(i + 1) % len(agents)]

    async def judged_speaker(self, state: ConversationState) -> Agent:
        """The judge picks who speaks next among everyone but the last speaker; its choice
        is stored, so a resumed conversation goes on with the same speakers."""
        key = turn_key(state.plan.id, state.n_turns)
        stored = self.store.get("speaker", key)
        candidates = [a for a in state.plan.agents if a.id != state.last_speaker]
        if stored is not None:
            return next(a for a in state.plan.agents if a.id == stored["speaker"])
        assert self.judge is not None
        letters = [chr(ord("A") + i) for i in range(len(candidates))]
        messages = speaker_messages(list(state.recent), candidates, letters)
        assert self.closed is not None
        try:
            answer = await self.closed.read(ClosedQuestion(messages, letters))
        except RunError:  # a failed read: the words may still name someone
            answer = ClosedAnswer("none")
        method = "logprobs"
        choice: int | None = None
        if answer.scores is not None:
            choice = letters.index(answer.scores.top)
        else:
            method = "text"
            reply = await self.judge.chat(messages, ChatParams(temperature=0.0, max_tokens=8,
                                                               seed=state.plan.seed))
            choice = parse_letter(reply.text, len(candidates))
        if choice is None:  # the judge did not name anyone: fall back to the round
            method = "round-robin"
            last = next(k for k, a in enumerate(state.plan.agents) if a.id == state.last_speaker)
            picked = state.plan.agents[(last + 1) % len(state.plan.agents)]
        else:
            picked = candidates[choice]
        self.store.put("speaker", key, {"conversation_id": state.plan.id,
                                        "index": state.n_turns, "speaker": picked.id,
                                        "method": method})
        return picked


def speaker_messages(recent: Sequence[Turn], candidates: Sequence[Agent],
                     letters: Sequence[str]) -> list[Message]:
    """Ask a judge who should speak next in a group conversation."""
    transcript = "\n".join(f"{t.name}: {t.text}" for t in recent[-8:])
    options = "\n".join(f"{letter}. {a.name}" for letter, a in zip(letters, candidates,
                                                                   strict=True))
    return [
        Message(role="system", content="You moderate a group conversation. Pick who should "
                "speak next so that the conversation flows naturally: someone who was "
                "addressed, or who has something to add. Answer with one letter."),
        Message(role="user", content=f"Conversation so far:\n{transcript}\n\nWho speaks "
                f"next?\n{options}\n\nAnswer with the letter only."),
    ]
