"""Run chat requests against a model: bounded concurrency, cache, retries, timeouts.

One asyncio event loop; ``max_concurrency`` workers per runner pull requests from the input
and push results out as they complete, so callers can store each result before more work is
scheduled. Backends that batch (``batch_size`` > 1) get several cache misses per call.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from personae.errors import RunError
from personae.models.base import (
    Capability,
    ChatParams,
    ChoiceScores,
    Completion,
    Message,
    Model,
    TransientModelError,
    request_key,
    require_capability,
)
from personae.runtime.cache import ResponseCache
from personae.runtime.pool import run_pool
from personae.runtime.progress import ProgressReporter
from personae.runtime.ratelimit import TokenBucket
from personae.runtime.retry import RetryPolicy


@dataclass(frozen=True)
class ChatRequest:
    """One chat to run. ``conditioning`` identifies non-prompt conditioning (e.g. a
    steering vector hash) so it is part of the cache key; ``tag`` is the caller's handle."""

    messages: tuple[Message, ...]
    params: ChatParams = field(default_factory=ChatParams)
    conditioning: str | None = None
    tag: object = None


@dataclass
class ChatResult:
    index: int
    request: ChatRequest
    completion: Completion | None = None
    error: str | None = None
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.completion is not None


@dataclass
class RunStats:
    model_calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0


_DONE = object()
T = TypeVar("T")


@dataclass(frozen=True)
class _Failure:
    error: Exception


class Runner:
    """Runs requests against one model.

    >>> from personae.models.scripted import ScriptedModel
    >>> runner = Runner(ScriptedModel(replies=["Hello."]), cache=None, progress="off")
    >>> asyncio.run(runner.chat([Message(role="user", content="hi")])).text
    'Hello.'
    """

    def __init__(
        self,
        model: Model,
        *,
        cache: ResponseCache | None = None,
        concurrency: int | None = None,
        timeout_s: float = 300.0,
        retry: RetryPolicy | None = None,
        progress: str = "auto",
        label: str = "chat",
        rate_limit: float | None = None,
    ) -> None:
        self.model = model
        self.cache = cache
        self.concurrency = max(1, concurrency or model.max_concurrency)
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.progress_mode = progress
        self.label = label
        self.stats = RunStats()
        # Requests per second; backends may carry their own (openai:M@URL?rate_limit=5).
        rate = rate_limit if rate_limit is not None else getattr(model, "rate_limit", None)
        self._bucket = TokenBucket(rate) if rate else None

    async def chat(self, messages: Sequence[Message], params: ChatParams | None = None,
                   *, conditioning: str | None = None) -> Completion:
        """One chat through cache and retries; raises `RunError` when it finally fails."""
        req = ChatRequest(tuple(messages), params or ChatParams(), conditioning)
        result = (await self._resolve([(0, req)]))[0]
        if result.completion is None:
            raise RunError(result.error or "model call failed")
        return result.completion

    async def score_choices(self, messages: Sequence[Message], choices: Sequence[str],
                            *, prefill: str = "") -> ChoiceScores:
        """`Model.score_choices` under the same timeout and retry policy as chats."""
        value, _ = await self._with_retries(
            lambda: self.model.score_choices(messages, choices, prefill=prefill))
        return value

    async def iter_chats(self, requests: Iterable[ChatRequest], *, total: int | None = None,
                         done_before: int = 0) -> AsyncIterator[ChatResult]:
        """Yield results as they complete (not in input order; see ``ChatResult.index``).
        ``done_before``: how many of the stage's requests a resumed run already has."""
        if total is None and isinstance(requests, Sequence):
            total = len(requests)
        batch_size = max(1, self.model.batch_size)
        # Bounded: workers wait while the caller stores results, so a slow consumer (a run
        # store writing each record) holds back new requests instead of piling them up.
        out: asyncio.Queue[object] = asyncio.Queue(maxsize=self.concurrency * batch_size)
        reporter = ProgressReporter(self.label, total, mode=self.progress_mode,
                                    done_before=done_before)

        async def deliver(_: object, results: list[ChatResult]) -> None:
            for result in results:
                await out.put(result)

        async def produce() -> None:
            try:
                # _resolve turns model failures into failed results, so nothing is caught:
                # bad input or a bug stops every worker now rather than after the remaining
                # requests have all been sent (and paid for).
                await run_pool(_batches(enumerate(requests), batch_size), self._resolve,
                               limit=self.concurrency, on_result=deliver, catch=())
            except Exception as exc:
                await out.put(_Failure(exc))
                return
            await out.put(_DONE)

        producer = asyncio.create_task(produce())
        try:
            while (item := await out.get()) is not _DONE:
                if isinstance(item, _Failure):
                    raise item.error
                assert isinstance(item, ChatResult)
                reporter.advance(cached=bool(item.completion and item.completion.cached),
                                 failed=not item.ok)
                yield item
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
            reporter.close()

    async def run_chats(self, requests: Iterable[ChatRequest]) -> list[ChatResult]:
        """All results, in input order."""
        results = [r async for r in self.iter_chats(requests)]
        return sorted(results, key=lambda r: r.index)

    async def _resolve(self, batch: list[tuple[int, ChatRequest]]) -> list[ChatResult]:
        """Serve cache hits, then send the misses to the model in one call (or one batch)."""
        results: list[ChatResult] = []
        misses: list[tuple[ChatResult, str]] = []
        for index, req in batch:
            result = ChatResult(index, req)
            if self.cache is None:  # hashing the request is pure cost without a cache
                misses.append((result, ""))
                results.append(result)
                continue
            key = request_key(self.model.identity, req.messages, req.params, req.conditioning)
            hit = self.cache.get(key)
            if hit is not None:
                self.stats.cache_hits += 1
                result.completion = hit
            else:
                misses.append((result, key))
            results.append(result)
        if not misses:
            return results
        if any(r.request.params.top_logprobs for r, _ in misses):
            require_capability(self.model, Capability.LOGPROBS)
        pairs = [(r.request.messages, r.request.params) for r, _ in misses]

        async def call() -> list[Completion]:
            if len(pairs) == 1:
                return [await self.model.chat(*pairs[0])]
            return await self.model.chat_batch(pairs)

        try:
            completions, attempts = await self._with_retries(call)
        except RunError as exc:
            self.stats.failures += len(misses)
            for result, _ in misses:
                result.error, result.attempts = str(exc), getattr(exc, "attempts", 1)
            return results
        for (result, key), completion in zip(misses, completions, strict=True):
            result.completion, result.attempts = completion, attempts
            if self.cache is not None:
                self.cache.put(key, completion, model=self.model.identity)
        return results

    async def _with_retries(self, call: Callable[[], Awaitable[T]]) -> tuple[T, int]:
        """Call until it succeeds: transient errors and timeouts are retried with backoff,
        anything else propagates. Returns the value and the number of attempts."""
        attempt = 0
        while True:
            attempt += 1
            if self._bucket is not None:
                await self._bucket.acquire()
            self.stats.model_calls += 1
            try:
                async with asyncio.timeout(self.timeout_s):
                    value = await call()
                return value, attempt
            except TimeoutError:
                error: TransientModelError = TransientModelError(
                    f"model {self.model.identity!r} did not answer within {self.timeout_s:g}s")
                if not getattr(self.model, "retry_timeouts", True):
                    # An in-process backend's worker thread cannot be cancelled: it is still
                    # generating, so a retry would only queue more work behind it.
                    raise _attempts(RunError(str(error)), attempt) from None
            except TransientModelError as exc:
                error = exc
            except RunError as exc:
                _attempts(exc, attempt)
                raise
            if attempt >= self.retry.max_attempts:
                raise _attempts(RunError(f"{error} (gave up after {attempt} attempts)"),
                                attempt) from None
            self.stats.retries += 1
            await asyncio.sleep(self.retry.delay(attempt - 1, error.retry_after))


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter), taken lazily."""
    source = iter(items)
    while batch := list(itertools.islice(source, size)):
        yield batch


def _attempts(exc: RunError, attempts: int) -> RunError:
    exc.attempts = attempts  # type: ignore[attr-defined]
    return exc
