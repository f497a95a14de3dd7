"""Scripted fake models for the administration logic (never the only test of an integration:
the real bundled model runs in tests/cli/test_survey_cli.py)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

from personae.errors import CapabilityError, RunError
from personae.models import ChatParams, ChoiceScores, Completion, Message
from personae.models.base import BaseBackend
from personae.models.registry import BACKENDS

_OPTION = re.compile(r'(\d+) = "([^"]+)"')


def shown_options(prompt: str) -> dict[str, str]:
    """``{digit: label}`` as the prompt lists them."""
    return dict(_OPTION.findall(prompt))


class FakeModel(BaseBackend):
    """Answers by a rule on the messages: ``pick(messages) -> label or digit``.

    ``score_choices`` puts ``confidence`` on the chosen digit (split between two digits for
    a fractional choice like "2.5") and spreads the rest evenly over all of them;
    ``chat`` replies with the digit (or what ``reply`` returns). Every request is recorded.
    """

    backend = "scripted"
    capabilities = BACKENDS["scripted"].capabilities

    def __init__(self, pick: Callable[[Sequence[Message]], str], *, confidence: float = 0.8,
                 fail_after: int | None = None, prefill_ok: bool = True,
                 concurrency: int = 4, name: str = "fake") -> None:
        self.pick = pick
        self.confidence = confidence
        self.fail_after = fail_after
        self.prefill_ok = prefill_ok
        self.max_concurrency = concurrency
        self.identity = f"scripted:{name}"
        self.requests: list[list[Message]] = []
        self.prefills: list[str] = []

    def _digit(self, messages: Sequence[Message]) -> str:
        choice = self.pick(messages)
        if choice.isdigit():
            return choice
        options = shown_options(messages[-1].content)
        return next(d for d, label in options.items() if label == choice)

    def _count(self, messages: Sequence[Message]) -> None:
        if self.fail_after is not None and len(self.requests) >= self.fail_after:
            raise RunError("fake model: down")
        self.requests.append(list(messages))

    async def score_choices(self, messages: Sequence[Message], choices: Sequence[str], *,
                            prefill: str = "") -> ChoiceScores:
        if prefill and not self.prefill_ok:
            raise CapabilityError("fake: cannot prefill")
        self._count(messages)
        self.prefills.append(prefill)
        choice = self.pick(messages)
        if "." in choice:  # "2.5": the confidence split between the digits either side
            x = float(choice)
            lo, hi = math.floor(x), math.ceil(x)
            weight = {str(lo): hi - x, str(hi): x - lo} if lo != hi else {str(lo): 1.0}
        else:
            weight = {self._digit(messages): 1.0}
        rest = (1 - self.confidence) / len(choices)
        probs = [rest + self.confidence * weight.get(c, 0.0) for c in choices]
        return ChoiceScores.from_logprobs(choices, [math.log(p) for p in probs])

    async def chat(self, messages: Sequence[Message], params: ChatParams) -> Completion:
        self._count(messages)
        return Completion(text=self._digit(messages))


def always(label: str) -> Callable[[Sequence[Message]], str]:
    return lambda messages: label
