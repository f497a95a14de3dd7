"""The ``openai:MODEL[@BASE_URL]`` backend: any OpenAI-compatible chat server.

vLLM, llama.cpp's server, Ollama, LM Studio and hosted APIs all speak
``/v1/chat/completions``. The SDK's own retries are off: the runtime retries with backoff and
jitter, and this module only sorts errors into transient (worth a retry) and permanent.

Against a fast server (vLLM, the loopback test server) the client's own CPU, not the network,
caps requests per second: about 1 ms of CPU a request, nearly all of it in the SDK, httpx and
httpcore. Every request still goes through the SDK client (its auth, headers, base URL,
timeouts and error types), but the hot path avoids its costlier optional layers (measured at
concurrency 64 on 2 cores, benchmarks/runtime.py):

* ``client.post`` instead of ``chat.completions.create``: the latter runs a recursive
  TypedDict transform over the body that we do not need (about 1 ms a request);
* the reply is read as bytes and picked apart as plain JSON instead of being built into the
  SDK's pydantic ``ChatCompletion`` (about 0.15 ms a request);
* requests are spread over several SDK clients with about ``_CONNECTIONS_PER_CLIENT``
  connections each: an httpcore pool rescans all its connections, probing idle sockets,
  twice per request, about 90 us a scan with 64 connections against 55 us with 16.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from personae.errors import CapabilityError, InputError, RunError
from personae.models.base import (
    BaseBackend,
    ChatParams,
    ChoiceScores,
    Completion,
    Message,
    TransientModelError,
    logprobs_from_openai,
    validate_choices,
)
from personae.models.options import parse_options
from personae.models.registry import BACKENDS
from personae.models.spec import ModelSpec

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"

# Target connections per SDK client (see the module docstring): a pool this small is cheap to
# rescan, and concurrency up to this size still gets a single client.
_CONNECTIONS_PER_CLIENT = 16


class OpenAIOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key_env: str = DEFAULT_API_KEY_ENV
    concurrency: int = Field(default=16, ge=1)
    timeout_s: float = Field(default=600.0, gt=0)
    rate_limit: float | None = Field(default=None, gt=0)  # requests per second, for the Runner


class OpenAIModel(BaseBackend):
    """A model behind an OpenAI-compatible server.

    >>> OpenAIModel("qwen", base_url="http://127.0.0.1:8000/v1").identity  # no request yet
    'openai:qwen@http://127.0.0.1:8000/v1'
    """

    backend = "openai"
    capabilities = BACKENDS["openai"].capabilities
    options_type = OpenAIOptions

    @classmethod
    def from_spec(cls, spec: ModelSpec, **options: Any) -> OpenAIModel:
        return cls(spec.target, base_url=spec.base_url, **options)

    def __init__(self, model: str, *, base_url: str | None = None, **options: Any) -> None:
        self.options = parse_options(OpenAIOptions, self.backend, options)
        self.model_name = model
        self.base_url = base_url
        self.max_concurrency = self.options.concurrency
        self.rate_limit = self.options.rate_limit
        self.identity = f"openai:{model}@{base_url or 'api.openai.com'}"
        self.where = base_url or "the OpenAI API"  # how error messages name the server
        key = os.environ.get(self.options.api_key_env)
        if not key:
            if base_url is None:
                raise InputError(f"openai:{model} needs an API key: set "
                                 f"{self.options.api_key_env} (or choose --api-key-env)")
            key = "unused"  # local servers (vLLM, llama.cpp, Ollama) accept any key
        self._api_key = key
        self._clients: list[Any] = []  # AsyncOpenAI clients, made on first use
        self._in_flight: list[int] = []  # requests now running on each client

    def _make_clients(self) -> None:
        from openai import AsyncOpenAI

        n = max(1, math.ceil(self.max_concurrency / _CONNECTIONS_PER_CLIENT))
        self._clients = [AsyncOpenAI(api_key=self._api_key, base_url=self.base_url,
                                     max_retries=0, timeout=self.options.timeout_s)
                         for _ in range(n)]
        self._in_flight = [0] * n

    async def _create(self, **kwargs: Any) -> dict[str, Any]:
        """POST ``/chat/completions`` and return the reply's JSON object; failures come out
        as `TransientModelError` (worth a retry) or `RunError` (not)."""
        import openai

        where = self.where
        if not self._clients:
            self._make_clients()
        # The least busy client, so each pool holds about its share of the connections
        # (round-robin lets a pool drift above its share and open extra connections).
        i = min(range(len(self._in_flight)), key=self._in_flight.__getitem__)
        clients = self._clients  # aclose() may swap the list while we wait
        in_flight = self._in_flight
        in_flight[i] += 1
        try:
            # post(), not chat.completions.create(), and cast_to=bytes, not ChatCompletion:
            # see the module docstring. HTTP status errors are still raised by the SDK.
            raw = await clients[i].post(
                "/chat/completions", body={"model": self.model_name, **kwargs}, cast_to=bytes)
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
        finally:
            in_flight[i] -= 1
        try:
            resp = json.loads(raw)
        except ValueError:
            raise RunError(f"{where}: the reply is not JSON: {raw[:200]!r}") from None
        if not isinstance(resp, dict):
            raise RunError(f"{where}: the reply is not a JSON object: {raw[:200]!r}")
        return resp

    async def chat(self, messages: Sequence[Message], params: ChatParams) -> Completion:
        start = time.perf_counter()
        kwargs: dict[str, Any] = {
            "messages": _wire(messages),
            "max_tokens": params.max_tokens, "temperature": params.temperature,
            "top_p": params.top_p, "seed": params.effective_seed,
        }
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.top_logprobs:
            kwargs.update(logprobs=True, top_logprobs=params.top_logprobs)
        resp = await self._create(**kwargs)
        where = self.where
        choice = _first_choice(resp)
        if choice is None:
            raise RunError(f"{where}: response has no choices")
        usage = resp.get("usage") or {}
        try:
            return Completion(
                text=(choice.get("message") or {}).get("content") or "",
                finish_reason=choice.get("finish_reason") or "stop",
                prompt_tokens=usage.get("prompt_tokens") or 0,
                completion_tokens=usage.get("completion_tokens") or 0,
                logprobs=logprobs_from_openai(choice.get("logprobs")),
                model=self.identity,
                latency_s=time.perf_counter() - start,
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            # Plain JSON is not validated on the way in: a reply of the wrong shape ends up
            # here (pydantic's ValidationError is a ValueError).
            raise RunError(f"{where}: malformed chat completion "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None

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
            messages=_wire(messages),
            max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=20)
        first = _first_choice(resp)
        try:
            lp = logprobs_from_openai(first.get("logprobs")) if first is not None else None
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise RunError(f"{self.where}: malformed logprobs "
                           f"({type(exc).__name__}: {exc})") from None
        if not lp:
            raise CapabilityError(f"{self.where}: the server returned no logprobs; "
                                  "score_choices needs a server that supports them")
        top = lp[0].top or {lp[0].token: lp[0].logprob}
        return ChoiceScores.from_logprobs(choices, [_first_token_logprob(top, c)
                                                    for c in choices])

    async def aclose(self) -> None:
        clients, self._clients, self._in_flight = self._clients, [], []
        for client in clients:
            await client.close()


def _first_token_logprob(top: dict[str, float], choice: str) -> float:
    """The best logprob among first tokens that begin ``choice`` ("Ent" for "entailment").
    One-character choices ("4", "A") must match exactly: the article "a" is not option A."""
    want = choice.strip()
    if len(want) == 1:
        matches = [v for t, v in top.items() if t.strip() == want]
    else:
        matches = [v for t, v in top.items()
                   if t.strip() and want.lower().startswith(t.strip().lower())]
    return max(matches) if matches else -math.inf


def _wire(messages: Sequence[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def _first_choice(resp: dict[str, Any]) -> dict[str, Any] | None:
    choices = resp.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return None


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
