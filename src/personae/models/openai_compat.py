"""The ``openai:MODEL[@BASE_URL]`` backend: any OpenAI-compatible chat server.

vLLM, llama.cpp's server, Ollama, LM Studio and hosted APIs all speak
``/v1/chat/completions``. The SDK's own retries are off: the runtime retries with backoff and
jitter, and this module only sorts errors into transient (worth a retry) and permanent.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from personae.errors import CapabilityError, InputError, RunError
from personae.models.base import (
    BaseBackend,
    Capability,
    ChatParams,
    ChoiceScores,
    Completion,
    Message,
    TokenLogprob,
    TransientModelError,
    validate_choices,
)
from personae.models.options import parse_options

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"


class OpenAIOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key_env: str = DEFAULT_API_KEY_ENV
    concurrency: int = 16
    timeout_s: float = 600.0


class OpenAIModel(BaseBackend):
    """A model behind an OpenAI-compatible server.

    >>> model = OpenAIModel("qwen", base_url="http://127.0.0.1:8000/v1")  # doctest: +SKIP
    """

    backend = "openai"
    capabilities = frozenset({Capability.CHAT, Capability.LOGPROBS, Capability.SCORE_CHOICES})

    def __init__(self, model: str, *, base_url: str | None = None, **options: Any) -> None:
        self.options = parse_options(OpenAIOptions, self.backend, options)
        self.model_name = model
        self.base_url = base_url
        self.max_concurrency = self.options.concurrency
        self.identity = f"openai:{model}@{base_url or 'api.openai.com'}"
        key = os.environ.get(self.options.api_key_env)
        if not key:
            if base_url is None:
                raise InputError(f"openai:{model} needs an API key: set "
                                 f"{self.options.api_key_env} (or choose --api-key-env)")
            key = "unused"  # local servers (vLLM, llama.cpp, Ollama) accept any key
        self._api_key = key
        self._clients: list[Any] = []
        self._rr = 0

    def _get_client(self) -> Any:
        if not self._clients:
            from openai import AsyncOpenAI
            k = max(1, -(-self.max_concurrency // int(os.environ.get("SHARD", "1000000"))))
            self._clients = [AsyncOpenAI(api_key=self._api_key, base_url=self.base_url,
                                       max_retries=0, timeout=self.options.timeout_s) for _ in range(k)]
        self._rr += 1
        return self._clients[self._rr % len(self._clients)]

    async def _create(self, **kwargs: Any) -> Any:
        import openai

        where = self.base_url or "the OpenAI API"
        from openai.types.chat import ChatCompletion

        try:
            # client.post skips the SDK's recursive TypedDict transform of the request body,
            # which cost about 1 ms per request (a third of the client's time at high
            # concurrency); the body is already plain JSON, so nothing is lost.
            return await self._get_client().post(
                "/chat/completions", body={"model": self.model_name, **kwargs},
                cast_to=ChatCompletion)
        except openai.APITimeoutError:
            raise TransientModelError(f"{where}: request timed out") from None
        except openai.APIConnectionError as exc:
            raise TransientModelError(f"{where}: cannot connect ({_cause(exc)})") from None
        except openai.RateLimitError as exc:
            raise TransientModelError(f"{where}: rate limited (429)",
                                      retry_after=_retry_after(exc)) from None
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 409):
                raise TransientModelError(f"{where}: server error {exc.status_code}",
                                          retry_after=_retry_after(exc)) from None
            raise RunError(f"{where}: {exc.status_code} {_message(exc)}") from None
        except openai.OpenAIError as exc:
            raise RunError(f"{where}: {exc}") from None

    async def chat(self, messages: Sequence[Message], params: ChatParams) -> Completion:
        start = time.perf_counter()
        kwargs: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": params.max_tokens, "temperature": params.temperature,
            "top_p": params.top_p, "seed": params.seed + params.sample_index,
        }
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.top_logprobs:
            kwargs.update(logprobs=True, top_logprobs=params.top_logprobs)
        resp = await self._create(**kwargs)
        if not getattr(resp, "choices", None):
            raise RunError(f"{self.base_url or 'the OpenAI API'}: response has no choices")
        choice = resp.choices[0]
        usage = resp.usage
        return Completion(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason or "stop",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            logprobs=_logprobs(choice.logprobs),
            model=self.identity,
            latency_s=time.perf_counter() - start,
        )

    async def score_choices(self, messages: Sequence[Message], choices: Sequence[str], *,
                            prefill: str = "") -> ChoiceScores:
        """Probabilities from the top-20 logprobs of the first generated token.

        Over a chat API only the first token of each choice can be read, so choices must be
        told apart by their first token ("1".."5", "A".."D"); a choice outside the top 20
        gets probability 0. Prefilled answers are not portable across servers.
        """
        choices = validate_choices(choices)
        if prefill:
            raise CapabilityError("the openai backend cannot prefill the assistant turn; "
                                  "backends that can: llamacpp, hf")
        resp = await self._create(
            messages=[{"role": m.role, "content": m.content} for m in messages],
            max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=20)
        lp = _logprobs(resp.choices[0].logprobs) if resp.choices else None
        if not lp:
            raise RunError(f"{self.base_url or 'the OpenAI API'}: the server returned no "
                           "logprobs; score_choices needs a server that supports them")
        top = lp[0].top or {lp[0].token: lp[0].logprob}
        scores = []
        for choice in choices:
            matches = [v for t, v in top.items() if t.strip() == choice.strip()]
            scores.append(max(matches) if matches else -math.inf)
        return ChoiceScores.from_logprobs(choices, scores)

    async def aclose(self) -> None:
        for c in self._clients:
            await c.close()
        self._clients = []


def _logprobs(raw: Any) -> list[TokenLogprob] | None:
    content = getattr(raw, "content", None) if raw is not None else None
    if not content:
        return None
    return [TokenLogprob(token=t.token, logprob=float(t.logprob),
                         top={x.token: float(x.logprob) for x in (t.top_logprobs or [])})
            for t in content]


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return str(cause or exc).splitlines()[0][:200] or type(cause or exc).__name__


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
    return str(getattr(exc, "message", exc))[:300]


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
