"""A deterministic scripted model for unit tests of logic (never the only test of anything).

Replies come from rules on the last user message, else from a list indexed by a hash of the
request, so the same request always gets the same reply whatever the call order.

File format (YAML or JSON)::

    rules:
      - match: "(?i)hello"        # regular expression on the last user message
        reply: "Hi there."
    replies: ["Fine.", "Sure."]   # otherwise, one of these
    choices: {"1": 0.1, "2": 0.2, "3": 0.4, "4": 0.2, "5": 0.1}   # for score_choices
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from personae.errors import InputError
from personae.models.base import (
    BaseBackend,
    Capability,
    ChatParams,
    ChoiceScores,
    Completion,
    Message,
    validate_choices,
)

Responder = Callable[[Sequence[Message], ChatParams], str]


class ScriptedModel(BaseBackend):
    """Replies from a script. ``calls`` counts every request that reached the model.

    >>> import asyncio
    >>> m = ScriptedModel(replies=["Ahoy."])
    >>> asyncio.run(m.chat([Message(role="user", content="hi")], ChatParams())).text
    'Ahoy.'
    """

    backend = "scripted"
    capabilities = frozenset({Capability.CHAT, Capability.SCORE_CHOICES, Capability.BATCH})

    def __init__(
        self,
        replies: Sequence[str] | Responder = ("OK.",),
        *,
        rules: Sequence[tuple[str, str]] = (),
        choices: Mapping[str, float] | None = None,
        name: str = "scripted",
        max_concurrency: int | str = 64,
        batch_size: int | str = 1,
    ) -> None:
        self._responder = replies if callable(replies) else None
        self._replies = list(replies) if not callable(replies) else []
        if not callable(replies) and not self._replies:
            raise InputError("a scripted model needs at least one reply")
        try:
            self._rules = [(re.compile(p), r) for p, r in rules]
        except re.error as exc:
            raise InputError(f"scripted model: bad rule pattern: {exc}") from None
        self._choices = dict(choices or {})
        self.identity = f"scripted:{name}:{self._script_hash()}"
        self.max_concurrency = int(max_concurrency)
        self.batch_size = int(batch_size)
        self.calls = 0

    @classmethod
    def from_file(cls, path: str, **options: Any) -> ScriptedModel:
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
            data = yaml.safe_load(text) if file.suffix in (".yaml", ".yml") else json.loads(text)
        except FileNotFoundError:
            raise InputError(f"{path}: no such scripted model file") from None
        except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
            raise InputError(f"{path}: not a valid scripted model file: "
                             f"{str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: a scripted model file is a mapping with rules/replies")
        try:
            rules = [(str(r["match"]), str(r["reply"])) for r in data.get("rules", [])]
        except (TypeError, KeyError):
            raise InputError(f"{path}: each rule needs 'match' and 'reply'") from None
        replies = [str(r) for r in data.get("replies", [])] or (["OK."] if rules else [])
        return cls(replies, rules=rules, choices=data.get("choices"), name=file.stem, **options)

    def _script_hash(self) -> str:
        blob = json.dumps([self._replies, [(p.pattern, r) for p, r in self._rules],
                           self._choices, getattr(self._responder, "__qualname__", None)])
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def reply_for(self, messages: Sequence[Message], params: ChatParams) -> str:
        last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        for pattern, reply in self._rules:
            if pattern.search(last_user):
                return reply
        if self._responder is not None:
            return self._responder(messages, params)
        digest = hashlib.sha256(
            json.dumps([[m.role, m.content] for m in messages]).encode()
            + f"{params.seed}:{params.sample_index}".encode()
        ).digest()
        return self._replies[int.from_bytes(digest[:4], "big") % len(self._replies)]

    async def chat(self, messages: Sequence[Message], params: ChatParams) -> Completion:
        self.calls += 1
        text = self.reply_for(messages, params)
        words = text.split()
        if len(words) > params.max_tokens:
            return Completion(text=" ".join(words[: params.max_tokens]), finish_reason="length",
                              completion_tokens=params.max_tokens, model=self.identity)
        return Completion(text=text, completion_tokens=len(words), model=self.identity)

    async def score_choices(
        self, messages: Sequence[Message], choices: Sequence[str], *, prefill: str = ""
    ) -> ChoiceScores:
        self.calls += 1
        choices = validate_choices(choices)
        weights = [float(self._choices.get(c, 1.0 if not self._choices else 0.0)) for c in choices]
        logprobs = [math.log(w) if w > 0 else float("-inf") for w in weights]
        return ChoiceScores.from_logprobs(choices, logprobs)
