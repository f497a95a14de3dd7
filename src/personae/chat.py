"""A chat with a model playing a persona: the system prompt, the history, the cached runner."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from personae.errors import InputError, describe_validation
from personae.models.base import ChatParams, Message, Model
from personae.models.spec import load_model, parse_model_spec
from personae.persona.render import Template, load_template
from personae.persona.schema import Persona
from personae.runtime.cache import ResponseCache
from personae.runtime.executor import Runner


@dataclass
class ChatSession:
    """A conversation with one persona on one model, remembered turn by turn.

    >>> import asyncio
    >>> from personae.models import ScriptedModel
    >>> s = ChatSession.open(Persona(name="Ana", summary="a nurse"),
    ...                      model=ScriptedModel(replies=["Hi, I'm Ana."]), use_cache=False)
    >>> asyncio.run(s.send("Who are you?"))
    "Hi, I'm Ana."
    """

    persona: Persona
    system_prompt: str
    runner: Runner
    params: ChatParams
    model_spec: str
    history: list[Message] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        persona: Persona,
        *,
        model: str | Model = "bundled",
        template: str | Template = "card",
        max_tokens: int = 256,
        temperature: float = 0.7,
        seed: int = 0,
        use_cache: bool = True,
        api_key_env: str | None = None,
        timeout_s: float = 300.0,
    ) -> ChatSession:
        if isinstance(model, str):
            parsed = parse_model_spec(model)
            options = {}
            if api_key_env is not None and parsed.backend == "openai":
                options["api_key_env"] = api_key_env
            backend = load_model(parsed, **options)
            spec = model
        else:
            backend, spec = model, model.identity
        tpl = template if isinstance(template, Template) else load_template(template)
        runner = Runner(backend, cache=ResponseCache() if use_cache else None,
                        timeout_s=timeout_s, progress="off")
        try:
            params = ChatParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
        except ValidationError as exc:
            raise InputError(describe_validation(exc)) from None
        return cls(persona, tpl.render(persona), runner, params, spec)

    def messages(self, text: str) -> list[Message]:
        return [Message(role="system", content=self.system_prompt), *self.history,
                Message(role="user", content=text)]

    async def send(self, text: str) -> str:
        """Send a user message; return the reply and remember both."""
        completion = await self.runner.chat(self.messages(text), self.params)
        reply = completion.text.strip()
        self.history += [Message(role="user", content=text),
                         Message(role="assistant", content=reply)]
        return reply

    def reset(self) -> None:
        self.history.clear()

    async def aclose(self) -> None:
        await self.runner.model.aclose()
        if self.runner.cache is not None:
            self.runner.cache.close()
