from __future__ import annotations

import asyncio
from pathlib import Path

from personae.models import ChatParams, Completion, Message, ScriptedModel, request_key
from personae.runtime import ResponseCache, Runner

MSGS = (Message(role="user", content="hi"),)


def test_key_covers_every_parameter() -> None:
    base = request_key("m", MSGS, ChatParams())
    variants = [
        request_key("m2", MSGS, ChatParams()),
        request_key("m", (Message(role="user", content="hi!"),), ChatParams()),
        request_key("m", MSGS, ChatParams(seed=1)),
        request_key("m", MSGS, ChatParams(temperature=0.2)),
        request_key("m", MSGS, ChatParams(max_tokens=10)),
        request_key("m", MSGS, ChatParams(sample_index=1)),
        request_key("m", MSGS, ChatParams(top_p=0.9)),
        request_key("m", MSGS, ChatParams(stop=("\n",))),
        request_key("m", MSGS, ChatParams(top_logprobs=2)),
        request_key("m", MSGS, ChatParams(), conditioning="vec:abc"),
    ]
    assert base == request_key("m", MSGS, ChatParams())
    assert len({base, *variants}) == len(variants) + 1


def test_persistent_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    ResponseCache(path).put("k", Completion(text="hello"), model="m")
    again = ResponseCache(path)
    hit = again.get("k")
    assert hit is not None and hit.text == "hello" and hit.cached
    assert again.get("other") is None and len(again) == 1


def test_second_identical_chat_is_served_from_cache(tmp_path: Path) -> None:
    model = ScriptedModel(replies=["one", "two", "three"])
    runner = Runner(model, cache=ResponseCache(tmp_path / "c.sqlite3"), progress="off")
    a = asyncio.run(runner.chat(MSGS, ChatParams()))
    b = asyncio.run(runner.chat(MSGS, ChatParams()))
    assert model.calls == 1 and a.text == b.text and b.cached and not a.cached
    asyncio.run(runner.chat(MSGS, ChatParams(seed=5)))
    assert model.calls == 2
