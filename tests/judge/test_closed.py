"""The one closed-question procedure: probabilities where the model has them (over the
coverage threshold), words otherwise, and a refused prefill dropped once for all."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from personae.errors import CapabilityError, RunError
from personae.judge.closed import MIN_COVERAGE, ClosedAnswer, ClosedJudge, ClosedQuestion
from personae.models import (
    Capability,
    ChatParams,
    ChoiceScores,
    Completion,
    Message,
    ScriptedModel,
)
from personae.runtime import Runner

CHOICES = ["1", "2", "3", "4", "5"]


def question(prefill: str = "Score: ") -> ClosedQuestion:
    return ClosedQuestion([Message(role="user", content="Rate it, 1-5.")], CHOICES, prefill)


class Recording(ScriptedModel):
    """A scripted model that records each score request's prefill and can refuse some."""

    def __init__(self, *args: object, refuse_prefill: bool = False, no_logprobs: bool = False,
                 **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.refuse_prefill, self.no_logprobs = refuse_prefill, no_logprobs
        self.prefills: list[str] = []
        self.chats = 0

    async def chat(self, messages: Sequence[Message], params: ChatParams) -> Completion:
        self.chats += 1
        return await super().chat(messages, params)

    async def score_choices(self, messages: Sequence[Message], choices: Sequence[str], *,
                            prefill: str = "") -> ChoiceScores:
        self.prefills.append(prefill)
        if self.no_logprobs:
            raise CapabilityError("the server returned no logprobs")
        if prefill and self.refuse_prefill:
            raise CapabilityError("the openai backend cannot prefill the assistant turn")
        return await super().score_choices(messages, choices, prefill=prefill)


def ask(judge: ClosedJudge, q: ClosedQuestion | None = None) -> ClosedAnswer:
    return asyncio.run(judge.ask(q or question()))


def judge_of(model: ScriptedModel, **kw: object) -> ClosedJudge:
    return ClosedJudge(Runner(model, progress="off"), **kw)  # type: ignore[arg-type]


def test_enough_mass_on_the_choices_is_read_from_the_probabilities() -> None:
    model = Recording(["3"], choices={"4": 0.5, "5": 0.3})  # 0.8 on the choices
    answer = ask(judge_of(model))
    assert answer.method == "logprobs" and answer.text is None and answer.prefill == "Score: "
    assert answer.scores is not None and answer.scores.top == "4"
    assert answer.scores.coverage == pytest.approx(0.8)
    assert model.prefills == ["Score: "] and model.chats == 0


def test_too_little_mass_on_the_choices_is_asked_in_words() -> None:
    model = Recording(["I'd say 3."], choices={"4": 0.2, "5": 0.1, "yes": 0.7})
    answer = ask(judge_of(model))
    assert 0.3 < MIN_COVERAGE
    assert answer == ClosedAnswer("text", text="I'd say 3.")
    assert model.prefills == ["Score: "] and model.chats == 1
    # The threshold is the caller's: at 0.25 the same distribution is kept.
    kept = ask(judge_of(model, min_coverage=0.25))
    assert kept.method == "logprobs" and kept.scores is not None


def test_no_mass_at_all_is_asked_in_words_or_left_unanswered() -> None:
    model = Recording(["5"], choices={"yes": 1.0})
    assert ask(judge_of(model)) == ClosedAnswer("text", text="5")
    unanswered = ask(judge_of(model, words=None))
    assert unanswered == ClosedAnswer("none", prefill="Score: ") and model.chats == 1


def test_a_server_without_logprobs_is_asked_in_words_and_never_scored_again() -> None:
    model = Recording(["4"], no_logprobs=True)
    judge = judge_of(model)
    assert [ask(judge).text for _ in range(3)] == ["4", "4", "4"]
    # The prefilled try, the plain try, then never again.
    assert model.prefills == ["Score: ", ""] and model.chats == 3


class ChatOnly(ScriptedModel):
    """A backend without the capability: `score_choices` raises its `CapabilityError`."""

    capabilities = frozenset({Capability.CHAT})

    async def score_choices(self, messages: Sequence[Message], choices: Sequence[str], *,
                            prefill: str = "") -> ChoiceScores:
        self.require(Capability.SCORE_CHOICES)
        raise AssertionError("unreachable")


def test_a_model_without_the_capability_is_never_scored() -> None:
    model = ChatOnly(["2"])
    assert ask(judge_of(model)) == ClosedAnswer("text", text="2") and model.calls == 1


def test_without_a_words_fallback_missing_logprobs_is_an_error() -> None:
    with pytest.raises(CapabilityError, match="no logprobs"):
        ask(judge_of(Recording(["2"], no_logprobs=True), words=None))
    # A model without the capability is still asked, so that its own error says why not.
    with pytest.raises(CapabilityError, match="score_choices"):
        ask(judge_of(ChatOnly(["2"]), words=None))


def test_a_refused_prefill_is_dropped_and_the_probabilities_still_used() -> None:
    model = Recording(["1"], choices={"4": 0.5, "5": 0.5}, refuse_prefill=True)
    judge = judge_of(model)
    first, second = ask(judge), ask(judge)
    assert first.method == second.method == "logprobs"
    assert first.prefill == second.prefill == ""
    # Refused once; every later question goes without it at once.
    assert model.prefills == ["Score: ", "", ""] and model.chats == 0


def test_concurrent_questions_share_what_the_judge_learnt() -> None:
    model = Recording(["4"], no_logprobs=True)
    judge = judge_of(model)

    async def many() -> list[ClosedAnswer]:
        return list(await asyncio.gather(*(judge.ask(question()) for _ in range(10))))

    answers = asyncio.run(many())
    assert {a.method for a in answers} == {"text"} and model.chats == 10
    assert len(model.prefills) < 20  # not every question found out for itself


def test_a_failed_call_propagates_as_a_run_error() -> None:
    class Down(ScriptedModel):
        async def score_choices(self, messages: Sequence[Message], choices: Sequence[str], *,
                                prefill: str = "") -> ChoiceScores:
            raise RunError("connection refused")

    with pytest.raises(RunError, match="connection refused"):
        ask(judge_of(Down(["1"])))
