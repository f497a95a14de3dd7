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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from personae.errors import InputError, describe_validation
from personae.models.base import (
    BaseBackend,
    ChatParams,
    ChoiceScores,
    Completion,
    Message,
    validate_choices,
)
from personae.models.options import parse_options
from personae.models.registry import BACKENDS
from personae.models.spec import ModelSpec

Responder = Callable[[Sequence[Message], ChatParams], str]


class ScriptedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_concurrency: int = Field(default=64, ge=1)
    batch_size: int = Field(default=1, ge=1)


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match: str
    reply: str


class ScriptFile(BaseModel):
    """The shape of a scripted model file."""

    model_config = ConfigDict(extra="forbid")

    rules: list[_Rule] = []
    replies: list[str] = []
    choices: dict[str, float] = {}

    @field_validator("replies", mode="before")
    @classmethod
    def _one_reply(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("choices", mode="before")
    @classmethod
    def _string_keys(cls, v: Any) -> Any:  # YAML reads {1: 0.5} with int keys
        return {str(k): x for k, x in v.items()} if isinstance(v, dict) else v


class ScriptedModel(BaseBackend):
    """Replies from a script. ``calls`` counts every request that reached the model.

    >>> import asyncio
    >>> m = ScriptedModel(replies=["Ahoy."])
    >>> asyncio.run(m.chat([Message(role="user", content="hi")], ChatParams())).text
    'Ahoy.'
    """

    backend = "scripted"
    capabilities = BACKENDS["scripted"].capabilities
    options_type = ScriptedOptions

    def __init__(
        self,
        replies: Sequence[str] | Responder = ("OK.",),
        *,
        rules: Sequence[tuple[str, str]] = (),
        choices: Mapping[str, float] | None = None,
        name: str | None = None,
        max_concurrency: int = 64,
        batch_size: int = 1,
    ) -> None:
        if isinstance(replies, str):
            replies = [replies]
        self._responder = replies if callable(replies) else None
        self._replies = list(replies) if not callable(replies) else []
        label = f"scripted model {name}" if name else "scripted model"
        if not callable(replies) and not self._replies:
            raise InputError(f"{label}: needs at least one reply")
        try:
            self._rules = [(re.compile(p), r) for p, r in rules]
        except re.error as exc:
            raise InputError(f"{label}: bad rule pattern: {exc}") from None
        self._choices = {str(k): float(v) for k, v in (choices or {}).items()}
        if self._responder is not None and name is None:
            # Two lambdas look alike to any hash we could take: without a name, give each
            # instance its own identity so their replies never share cache entries.
            name = f"callable-{id(self._responder):x}"
        self.identity = f"scripted:{name or 'scripted'}:{self._script_hash()}"
        self.max_concurrency = max_concurrency
        self.batch_size = batch_size
        self.calls = 0

    @classmethod
    def from_spec(cls, spec: ModelSpec, **options: Any) -> ScriptedModel:
        return cls.from_file(spec.target, **options)

    @classmethod
    def from_file(cls, path: str, **options: Any) -> ScriptedModel:
        file = Path(path)
        opts = parse_options(ScriptedOptions, "scripted", options)
        try:
            text = file.read_text(encoding="utf-8")
            loaded = (yaml.safe_load(text) if file.suffix.lower() in (".yaml", ".yml")
                      else json.loads(text))
        except FileNotFoundError:
            raise InputError(f"{path}: no such scripted model file") from None
        except IsADirectoryError:
            raise InputError(f"{path}: is a directory, expected a scripted model file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
            raise InputError(f"{path}: not a valid scripted model file (YAML or JSON): "
                             f"{str(exc).splitlines()[0]}") from None
        try:
            script = ScriptFile.model_validate(loaded)
        except ValidationError as exc:
            raise InputError(f"{path}: {describe_validation(exc, whole='file')}") from None
        replies = script.replies or (["OK."] if script.rules else [])
        if not replies:
            raise InputError(f"{path}: a scripted model needs 'replies' or 'rules'")
        return cls(replies, rules=[(r.match, r.reply) for r in script.rules],
                   choices=script.choices, name=file.stem, **opts.model_dump())

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
