"""The openai backend against a real HTTP server on loopback (personae.testing.loopback),
with failures injected at the server: 429 and 5xx are retried, 4xx are not, hangs time out."""

from __future__ import annotations

import asyncio

import pytest

from personae.errors import RunError
from personae.models import ChatParams, Message, load_model
from personae.runtime import ChatRequest, RetryPolicy, Runner
from personae.testing.loopback import LoopbackServer

FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01)
HI = [Message(role="system", content="Be Ana."), Message(role="user", content="hi")]


def run(srv: LoopbackServer, coro_fn, **runner_kw):
    async def main():
        model = load_model(f"openai:test@{srv.base_url}")
        try:
            return await coro_fn(Runner(model, retry=FAST, progress="off", **runner_kw))
        finally:
            await model.aclose()

    return asyncio.run(main())


def test_chat_sends_the_openai_request_shape() -> None:
    with LoopbackServer(reply="Olá!") as srv:
        out = run(srv, lambda r: r.chat(HI, ChatParams(max_tokens=7, seed=3, stop=("\n",))))
        assert out.text == "Olá!" and out.completion_tokens == 4
        (body,) = srv.bodies
    assert body["model"] == "test" and body["max_tokens"] == 7 and body["seed"] == 3
    assert body["messages"] == [{"role": "system", "content": "Be Ana."},
                                {"role": "user", "content": "hi"}]
    assert body["stop"] == ["\n"]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_statuses_are_retried(status: int) -> None:
    with LoopbackServer(fail_with=[status, status]) as srv:
        out = run(srv, lambda r: r.chat(HI))
        assert out.text and srv.requests == 3


def test_client_errors_are_not_retried() -> None:
    with LoopbackServer(fail_with=[400]) as srv:
        with pytest.raises(RunError, match="400 injected failure 400"):
            run(srv, lambda r: r.chat(HI))
        assert srv.requests == 1


def test_hanging_server_times_out() -> None:
    with LoopbackServer(hang=True) as srv:
        with pytest.raises(RunError, match="did not answer within 0.2s"):
            run(srv, lambda r: r.chat(HI), timeout_s=0.2)
        assert srv.requests == 3  # every attempt reached it


def test_unreachable_server() -> None:
    with LoopbackServer() as srv:
        port = srv.port
    dead = LoopbackServer(port=port)  # the port is closed now
    with pytest.raises(RunError, match="cannot connect"):
        run(dead, lambda r: r.chat(HI))


def test_concurrent_requests_reach_the_server_in_parallel() -> None:
    with LoopbackServer(delay_s=0.05) as srv:
        reqs = [ChatRequest((Message(role="user", content=str(i)),)) for i in range(64)]
        results = run(srv, lambda r: r.run_chats(reqs), concurrency=32)
        assert all(x.ok for x in results) and srv.requests == 64
        assert 16 < srv.peak_in_flight <= 32  # overlapping at the server, never above the bound


def test_rate_limit_option_reaches_the_runner() -> None:
    import time

    with LoopbackServer() as srv:
        model = load_model(f"openai:test@{srv.base_url}?rate_limit=20")
        runner = Runner(model, progress="off")
        reqs = [ChatRequest((Message(role="user", content=str(i)),)) for i in range(30)]
        start = time.monotonic()
        asyncio.run(runner.run_chats(reqs))
        # a burst of 20, then 20 per second: the last 10 need at least half a second
        assert time.monotonic() - start >= 0.45 and srv.requests == 30


def test_first_token_matching_for_closed_choices() -> None:
    from personae.models.openai_compat import _first_token_logprob

    top = {"Ent": -0.1, " neutral": -2.0, "a": -0.05, "A": -3.0}
    assert _first_token_logprob(top, "entailment") == -0.1
    assert _first_token_logprob(top, "neutral") == -2.0
    assert _first_token_logprob(top, "A") == -3.0  # the article "a" is not option A
    assert _first_token_logprob(top, "contradiction") == float("-inf")
