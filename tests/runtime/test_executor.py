from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from pathlib import Path

import pytest

from personae.errors import RunError
from personae.models import ChatParams, Completion, Message, ScriptedModel
from personae.models.base import BaseBackend, TransientModelError
from personae.runtime import ChatRequest, ProgressReporter, ResponseCache, RetryPolicy, Runner

FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01)


class Probe(BaseBackend):
    """A model that records how many calls are in flight and fails on request."""

    backend = "probe"
    identity = "probe"

    def __init__(self, *, fail_first: int = 0, permanent: bool = False, delay: float = 0.01,
                 hang: bool = False, concurrency: int = 8, batch_size: int = 1) -> None:
        self.fail_first, self.permanent, self.delay, self.hang = fail_first, permanent, delay, hang
        self.max_concurrency, self.batch_size = concurrency, batch_size
        self.in_flight = self.peak = self.calls = 0
        self.batches: list[int] = []

    async def chat(self, messages: Sequence[Message], params: ChatParams) -> Completion:
        self.calls += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.hang:
                await asyncio.sleep(3600)
            await asyncio.sleep(self.delay)
            if self.calls <= self.fail_first:
                if self.permanent:
                    raise RunError("bad request")
                raise TransientModelError("503", retry_after=None)
            return Completion(text="echo " + messages[-1].content)
        finally:
            self.in_flight -= 1

    async def chat_batch(self, requests):
        self.batches.append(len(requests))
        return [Completion(text="echo " + m[-1].content) for m, _ in requests]


def reqs(n: int) -> list[ChatRequest]:
    return [ChatRequest((Message(role="user", content=str(i)),)) for i in range(n)]


def test_concurrency_is_bounded_and_results_ordered() -> None:
    model = Probe(concurrency=5)
    results = asyncio.run(Runner(model, progress="off").run_chats(reqs(40)))
    assert model.peak == 5
    assert [r.completion.text for r in results] == [f"echo {i}" for i in range(40)]


def test_transient_errors_are_retried() -> None:
    model = Probe(fail_first=2, concurrency=1)
    runner = Runner(model, retry=FAST, progress="off")
    out = asyncio.run(runner.chat([Message(role="user", content="x")]))
    assert out.text == "echo x" and model.calls == 3 and runner.stats.retries == 2


def test_gives_up_after_max_attempts_and_caches_nothing(tmp_path: Path) -> None:
    model = Probe(fail_first=100, concurrency=1)
    cache = ResponseCache(tmp_path / "c.sqlite3")
    runner = Runner(model, cache=cache, retry=FAST, progress="off")
    (result,) = asyncio.run(runner.run_chats(reqs(1)))
    assert not result.ok and "gave up after 3 attempts" in result.error
    assert model.calls == 3 and len(cache) == 0
    with pytest.raises(RunError, match="503"):
        asyncio.run(runner.chat([Message(role="user", content="0")]))


def test_permanent_errors_are_not_retried() -> None:
    model = Probe(fail_first=100, permanent=True, concurrency=1)
    (result,) = asyncio.run(Runner(model, retry=FAST, progress="off").run_chats(reqs(1)))
    assert result.error == "bad request" and model.calls == 1


def test_hard_timeout_per_call() -> None:
    model = Probe(hang=True, concurrency=2)
    runner = Runner(model, retry=FAST, timeout_s=0.05, progress="off")
    results = asyncio.run(runner.run_chats(reqs(2)))
    assert all("did not answer within 0.05s" in r.error for r in results)


def test_batching_backend_gets_batches_of_misses(tmp_path: Path) -> None:
    model = Probe(concurrency=1, batch_size=4)
    cache = ResponseCache(tmp_path / "c.sqlite3")
    asyncio.run(Runner(model, cache=cache, progress="off").run_chats(reqs(3)))
    model.batches.clear()
    model.calls = 0
    results = asyncio.run(Runner(model, cache=cache, progress="off").run_chats(reqs(10)))
    # 3 came from the cache; the 7 misses went out in batches of at most 4 (a lone miss
    # goes through chat()).
    assert sum(model.batches) + model.calls == 7 and max(model.batches) == 4
    assert sum(r.completion.cached for r in results) == 3


def test_progress_lines_when_not_a_tty() -> None:
    stream = io.StringIO()
    rep = ProgressReporter("chat", 3, mode="lines", stream=stream, every_s=0)
    for _ in range(3):
        rep.advance(cached=True)
    rep.close()
    assert "chat: 3/3 done (3 cached, 0 failed)" in stream.getvalue()


def test_scripted_model_through_runner_with_cache(tmp_path: Path) -> None:
    model = ScriptedModel(replies=["a", "b"])
    runner = Runner(model, cache=ResponseCache(tmp_path / "c.sqlite3"), progress="off")
    asyncio.run(runner.run_chats(reqs(20)))
    asyncio.run(runner.run_chats(reqs(20)))
    assert model.calls == 20 and runner.stats.cache_hits == 20


def test_rate_limit_spaces_out_calls() -> None:
    import time

    model = Probe(concurrency=8, delay=0)
    runner = Runner(model, progress="off", rate_limit=50)  # burst of 50, then 50/s
    start = time.monotonic()
    asyncio.run(runner.run_chats(reqs(75)))
    elapsed = time.monotonic() - start
    # 50 go at once, the other 25 need about 0.5 s of refill.
    assert 0.4 < elapsed < 10.0 and model.calls == 75


class Exploding(Probe):
    async def chat(self, messages, params):
        self.calls += 1
        if messages[-1].content == "0":
            raise ValueError("bug in the backend")
        await asyncio.sleep(0.001)
        return Completion(text="ok")


def test_an_unexpected_error_stops_the_run_at_once() -> None:
    model = Exploding(concurrency=4)
    with pytest.raises(ValueError, match="bug in the backend"):
        asyncio.run(Runner(model, progress="off").run_chats(reqs(2000)))
    assert model.calls < 50  # not the whole input


def test_missing_logprobs_capability_fails_fast() -> None:
    from personae.errors import CapabilityError

    model = ScriptedModel(replies=["x"])
    req = ChatRequest((Message(role="user", content="hi"),), ChatParams(top_logprobs=3))
    with pytest.raises(CapabilityError, match="logprobs"):
        asyncio.run(Runner(model, progress="off").run_chats([req] * 10))
    assert model.calls == 0


def test_thread_backend_timeouts_are_not_retried() -> None:
    import threading
    import time

    class Blocking(Probe):
        retry_timeouts = False

        async def chat(self, messages, params):
            self.calls += 1
            await asyncio.to_thread(time.sleep, 0.3)
            return Completion(text="late")

    model = Blocking(concurrency=1)
    runner = Runner(model, retry=FAST, timeout_s=0.05, progress="off")
    with pytest.raises(RunError, match="did not answer within 0.05s"):
        asyncio.run(runner.chat([Message(role="user", content="x")]))
    assert model.calls == 1 and threading.active_count() >= 1


def test_runner_with_rate_limit_is_reusable_across_event_loops() -> None:
    runner = Runner(Probe(delay=0), progress="off", rate_limit=10_000)
    for _ in range(2):
        assert len(asyncio.run(runner.run_chats(reqs(30)))) == 30


def test_slow_consumer_holds_back_new_requests() -> None:
    model = Probe(concurrency=4, delay=0)

    async def consume() -> int:
        seen = 0
        async for _ in Runner(model, progress="off").iter_chats(reqs(200)):
            seen += 1
            if seen == 5:
                await asyncio.sleep(0.05)
                return model.calls
        return model.calls

    calls_when_stalled = asyncio.run(consume())
    assert calls_when_stalled < 30  # bounded by the queue, not the input size


def test_score_choices_through_runner() -> None:
    model = ScriptedModel(choices={"1": 1, "2": 3})
    scores = asyncio.run(Runner(model, progress="off").score_choices(
        [Message(role="user", content="rate")], ["1", "2"]))
    assert scores.probs == pytest.approx([0.25, 0.75])


def test_effective_seed_separates_seed_and_sample() -> None:
    seeds = {ChatParams(seed=s, sample_index=i).effective_seed for s in range(5) for i in range(5)}
    assert len(seeds) == 25 and ChatParams(seed=7).effective_seed == 7


def test_progress_total_can_shrink_but_not_below_done() -> None:
    import io

    from personae.runtime import ProgressReporter

    out = io.StringIO()
    rep = ProgressReporter("turns", 10, mode="lines", stream=out, every_s=0)
    rep.advance()
    rep.add_total(-4)
    assert rep.total == 6
    rep.add_total(-100)
    assert rep.total == 1  # never below what is already done
    rep.close()
    assert "1/1 done" in out.getvalue()
