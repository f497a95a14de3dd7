"""The model protocol every backend implements, and the types that cross it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from personae.errors import CapabilityError, InputError, RunError
from personae.models.capability import Capability
from personae.models.registry import backends_with

if TYPE_CHECKING:
    from personae.models.spec import ModelSpec

T = TypeVar("T")


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class ChatParams(BaseModel):
    """Sampling parameters. All of them, the seed included, are part of the cache key.

    ``sample_index`` tells apart repeated samples of the same prompt at the same seed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int = Field(default=256, ge=1, le=32768)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int = Field(default=0, ge=0, lt=2**31)
    stop: tuple[str, ...] = ()
    top_logprobs: int = Field(default=0, ge=0, le=20)
    sample_index: int = Field(default=0, ge=0)

    @property
    def effective_seed(self) -> int:
        """The seed the backend gets: ``seed`` itself for sample 0, otherwise a hash of
        (seed, sample_index), so that seed 0 / sample 1 and seed 1 / sample 0 differ.

        >>> ChatParams(seed=1).effective_seed
        1
        >>> ChatParams(seed=0, sample_index=1).effective_seed != 1
        True
        """
        if self.sample_index == 0:
            return self.seed
        digest = hashlib.sha256(f"{self.seed}:{self.sample_index}".encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    top: dict[str, float] = Field(default_factory=dict)


class Completion(BaseModel):
    """A model's reply to one chat request."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: list[TokenLogprob] | None = None
    model: str = ""
    cached: bool = False
    latency_s: float = 0.0


class ChoiceScores(BaseModel):
    """Probabilities over a closed set of continuations (they sum to 1).

    ``coverage`` is the probability mass the model put on the set before renormalising:
    a low value means the model wanted to say something else.
    """

    choices: list[str]
    probs: list[float]
    logprobs: list[float]
    coverage: float

    @property
    def top(self) -> str:
        return self.choices[max(range(len(self.probs)), key=self.probs.__getitem__)]

    @property
    def expected_index(self) -> float:
        """Expected position in ``choices`` (0-based), e.g. for a Likert mean."""
        return sum(i * p for i, p in enumerate(self.probs))

    @classmethod
    def from_logprobs(cls, choices: Sequence[str], logprobs: Sequence[float]) -> ChoiceScores:
        """Renormalise sequence log-likelihoods into probabilities over the set."""
        finite = [lp for lp in logprobs if math.isfinite(lp)]
        if not finite:
            raise NoChoiceMassError("the model gave none of the choices any probability")
        peak = max(finite)
        weights = [math.exp(lp - peak) if math.isfinite(lp) else 0.0 for lp in logprobs]
        total = sum(weights)
        coverage = sum(math.exp(lp) for lp in finite)
        return cls(choices=list(choices), probs=[w / total for w in weights],
                   logprobs=list(logprobs), coverage=min(coverage, 1.0))


def logprobs_from_openai(raw: Any) -> list[TokenLogprob] | None:
    """``choices[0].logprobs`` of an OpenAI-format chat completion (plain JSON, as the
    openai backend and llama-cpp-python both return it) as `TokenLogprob` items."""
    content = raw.get("content") if isinstance(raw, dict) else None
    if not content:
        return None
    return [TokenLogprob(token=t["token"], logprob=float(t["logprob"]),
                         top={x["token"]: float(x["logprob"])
                              for x in (t.get("top_logprobs") or [])})
            for t in content]


def request_key(identity: str, messages: Sequence[Message], params: ChatParams,
                conditioning: str | None = None) -> str:
    """Content address of a chat request: what the response cache is keyed by."""
    payload = {
        "model": identity,
        "messages": [[m.role, m.content] for m in messages],
        "params": params.model_dump(mode="json"),
        "conditioning": conditioning,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@runtime_checkable
class Model(Protocol):
    """What every backend provides. Methods are async; local backends run in a thread.

    ``identity`` names the exact weights (backend, model id, file hash or revision) and is
    part of every cache key; ``max_concurrency`` is how many requests the runtime may keep in
    flight; ``batch_size`` > 1 means ``chat_batch`` runs several requests in one pass.
    """

    backend: str
    identity: str
    capabilities: frozenset[Capability]
    max_concurrency: int
    batch_size: int

    async def chat(self, messages: Sequence[Message], params: ChatParams) -> Completion: ...

    async def chat_batch(
        self, requests: Sequence[tuple[Sequence[Message], ChatParams]]
    ) -> list[Completion]: ...

    async def score_choices(
        self, messages: Sequence[Message], choices: Sequence[str], *, prefill: str = ""
    ) -> ChoiceScores: ...

    async def aclose(self) -> None: ...


def require_capability(model: Model, capability: Capability) -> None:
    """Raise `CapabilityError` naming the backends that have ``capability`` if ``model``
    lacks it."""
    if capability not in model.capabilities:
        raise CapabilityError(
            f"model {model.identity!r} ({model.backend} backend) lacks the "
            f"{capability.value!r} capability; backends that have it: "
            + ", ".join(backends_with(capability))
        )


class BaseBackend:
    """Shared defaults: capability errors that say who has it, sequential batching."""

    backend = "base"
    identity = "base"
    capabilities: frozenset[Capability] = frozenset({Capability.CHAT})
    options_type: type[BaseModel] | None = None  # what the spec's ``?key=value`` may set
    max_concurrency = 1
    batch_size = 1
    # False for backends that compute in a worker thread: a timed-out call keeps running
    # there, so retrying it would only stack more work behind it.
    retry_timeouts = True

    @classmethod
    def from_spec(cls, spec: ModelSpec, **options: Any) -> Any:
        """The backend for a parsed spec (its target and options)."""
        return cls(spec.target, **options)

    def require(self, capability: Capability) -> None:
        require_capability(self, capability)

    async def chat(self, messages: Sequence[Message], params: ChatParams) -> Completion:
        raise NotImplementedError

    async def chat_batch(
        self, requests: Sequence[tuple[Sequence[Message], ChatParams]]
    ) -> list[Completion]:
        return [await self.chat(m, p) for m, p in requests]

    async def score_choices(
        self, messages: Sequence[Message], choices: Sequence[str], *, prefill: str = ""
    ) -> ChoiceScores:
        self.require(Capability.SCORE_CHOICES)
        raise NotImplementedError

    async def aclose(self) -> None:
        return None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class InProcessBackend(BaseBackend):
    """A backend that computes in this process (llama.cpp, transformers).

    Every call runs on one dedicated thread: the compute libraries' OpenMP workers belong to
    the calling thread, and hopping between asyncio.to_thread's pool threads started a second
    team fighting for the cores (llama.cpp: 84 instead of 118 tokens/s). One request at a
    time; a timed-out call cannot be interrupted, so it is not retried.
    """

    max_concurrency = 1
    retry_timeouts = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # A list, shared with shallow copies (a steered twin shares the executor too).
        self._compute_threads: list[int] = []
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=self.backend,
            initializer=lambda: self._compute_threads.append(threading.get_ident()))

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def run_sync(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` now on this backend's compute thread, under its lock (directly when
        already on that thread): for white-box work outside a chat call, such as reading
        activations, without starting a second team of compute threads."""
        def locked() -> T:
            with self._lock:
                return fn()

        if threading.get_ident() in self._compute_threads:
            return locked()
        return self._executor.submit(locked).result()

    async def score_choices(self, messages: Sequence[Message], choices: Sequence[str], *,
                            prefill: str = "") -> ChoiceScores:
        return await self._run(self._score_sync, messages, validate_choices(choices), prefill)

    def _score_sync(self, messages: Sequence[Message], choices: list[str],
                    prefill: str) -> ChoiceScores:
        raise NotImplementedError


class NoChoiceMassError(RunError):
    """The model's answer was outside the closed set: for a judgement, unparsable."""


class TransientModelError(RunError):
    """A failure worth retrying: rate limit, 5xx, connection error, timeout."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def validate_choices(choices: Sequence[str]) -> list[str]:
    out = list(choices)
    if len(out) < 2:
        raise InputError("score_choices needs at least two choices")
    if len(set(out)) != len(out) or any(not c for c in out):
        raise InputError("score_choices choices must be distinct, non-empty strings")
    return out
