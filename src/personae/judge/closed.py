"""Asking a model a closed question: which of a few choices (a Likert digit, an NLI label,
a persona's letter) it gives.

Where the model has logprobs the answer is read from its probabilities over the choices
(`Model.score_choices`), with the assistant turn prefilled when the question says so. It is
asked in words instead (a short reply, which the caller parses) when the model turns out to
give no probabilities, when it puts no probability on any choice, or when it puts less than
``min_coverage`` of it there: it wanted to say something else, so the argmax would be noise.
A server that refuses the prefill (a chat API) is asked without it from then on, since it
may still give logprobs. Every run kind that judges (eval, survey, simulate) goes through
`ClosedJudge`; what an answer means (a value, a record) is the caller's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from personae.errors import CapabilityError
from personae.models import Capability, ChatParams, ChoiceScores, Message
from personae.models.base import NoChoiceMassError
from personae.runtime import Runner

# Below this share of probability on the offered choices, a closed question is asked in
# words instead of read from the logprobs.
MIN_COVERAGE = 0.5
WORDS_PARAMS = ChatParams(temperature=0.0, max_tokens=16)


@dataclass(frozen=True)
class ClosedQuestion:
    """The chat to judge, the choices to read, and the start of the assistant turn that
    makes the choices the likely next words ("Score: ", "My answer: ")."""

    messages: Sequence[Message]
    choices: Sequence[str]
    prefill: str = ""


@dataclass(frozen=True)
class ClosedAnswer:
    """How a closed question was answered.

    ``logprobs``: ``scores`` holds the probabilities over the choices, read under
    ``prefill`` (empty when the server refused it). ``text``: ``text`` is the reply in
    words. ``none``: neither yet: the probabilities could not be used and the question is
    still to be asked in words (or, for a judge with no words fallback, stays unanswered).
    """

    method: Literal["logprobs", "text", "none"]
    scores: ChoiceScores | None = None
    text: str | None = None
    prefill: str = ""


class ClosedJudge:
    """Asks closed questions of the model behind ``runner``, remembering across questions
    (and concurrent tasks) whether it gives probabilities and takes a prefill.

    ``words`` are the sampling parameters of the fallback reply; None means there is no
    fallback: a model without logprobs then raises its `CapabilityError`, and a question
    with no mass on the choices is answered ``none``. ``min_coverage=0`` keeps every
    distribution, however little mass it has on the choices.

    >>> import asyncio
    >>> from personae.models.scripted import ScriptedModel
    >>> model = ScriptedModel(["4, mostly."], choices={"1": 0.1, "2": 0.1, "3": 0.2})
    >>> q = ClosedQuestion([Message(role="user", content="1, 2 or 3?")], ["1", "2", "3"])
    >>> answer = asyncio.run(ClosedJudge(Runner(model, progress="off")).ask(q))
    >>> answer.method, answer.text  # 0.4 of the mass on the choices: asked in words
    ('text', '4, mostly.')
    >>> asyncio.run(ClosedJudge(Runner(model, progress="off"), min_coverage=0.3).ask(q)).method
    'logprobs'
    """

    def __init__(self, runner: Runner, *, min_coverage: float = MIN_COVERAGE,
                 words: ChatParams | None = WORDS_PARAMS) -> None:
        self.runner = runner
        self.min_coverage = min_coverage
        self.words = words
        # Without a fallback the model must be asked, so that its own error says why not.
        self.no_logprobs = (words is not None
                            and Capability.SCORE_CHOICES not in runner.model.capabilities)
        self.no_prefill = False

    async def read(self, question: ClosedQuestion) -> ClosedAnswer:
        """The answer from the probabilities, or ``none`` when it must come from words.

        Raises the runner's `RunError` when the call fails for good.
        """
        while not self.no_logprobs:
            prefill = "" if self.no_prefill else question.prefill
            try:
                scores = await self.runner.score_choices(question.messages, question.choices,
                                                         prefill=prefill)
            except CapabilityError:
                if prefill:  # a chat API cannot prefill, but may still give logprobs
                    self.no_prefill = True
                    continue
                if self.words is None:
                    raise
                self.no_logprobs = True
                break
            except NoChoiceMassError:
                return ClosedAnswer("none", prefill=prefill)
            if scores.coverage < self.min_coverage:
                return ClosedAnswer("none", prefill=prefill)
            return ClosedAnswer("logprobs", scores=scores, prefill=prefill)
        return ClosedAnswer("none")

    async def ask(self, question: ClosedQuestion) -> ClosedAnswer:
        """`read`, then, where that gives no answer, a short reply in words (when the judge
        has a fallback)."""
        answer = await self.read(question)
        if answer.method == "logprobs" or self.words is None:
            return answer
        reply = await self.runner.chat(question.messages, self.words)
        return ClosedAnswer("text", text=reply.text)
