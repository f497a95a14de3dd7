"""End to end: the same persona and message on bundled, hf:bundled, and a real
``python -m llama_cpp.server`` serving the bundled GGUF on loopback (started and stopped here).
The cache is checked by counting the chat requests in the server's own access log."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.conftest import chat_requests

pytestmark = [pytest.mark.server, pytest.mark.model]
PERSONA = "sample:rosa-cusco-weaver"
ARGS = ["--persona", PERSONA, "--temperature", "0", "--max-tokens", "24", "What is your name?"]


def test_same_persona_and_message_on_three_backends(llama_server: tuple[str, Path]) -> None:
    url, _ = llama_server
    replies = {}
    for spec in ("bundled", "hf:bundled", f"openai:smollm@{url}"):
        proc = run_cli("chat", "--model", spec, *ARGS)
        assert proc.returncode == 0, (spec, proc.stderr)
        replies[spec] = proc.stdout.strip()
        assert replies[spec], spec
    # Same weights, greedy decoding: the server and in-process llama.cpp start the same way
    # (thread count and batch size change float rounding, so long replies may drift apart).
    a, b = replies["bundled"], replies[f"openai:smollm@{url}"]
    assert len(os.path.commonprefix([a, b])) >= 20, (a, b)
    assert all("Rosa" in r for r in replies.values()), replies


def test_second_identical_chat_never_reaches_the_server(llama_server: tuple[str, Path]) -> None:
    url, log = llama_server
    before = chat_requests(log)
    args = ["chat", "--model", f"openai:smollm@{url}", "--seed", "7", "--max-tokens", "12",
            "--persona", PERSONA, "Where do you live?"]
    first, second = run_cli(*args), run_cli(*args)
    assert first.returncode == 0 and first.stdout == second.stdout
    assert chat_requests(log) - before == 1
    run_cli(*args, "--no-cache")
    assert chat_requests(log) - before == 2


def test_score_choices_over_a_real_server_reads_first_token_logprobs(
        llama_server: tuple[str, Path]) -> None:
    import asyncio

    from personae.models import Message, load_model

    url, _ = llama_server
    msgs = [Message(role="user", content="Rate 'I am the life of the party' from 1 to 5. "
                                         "Answer with one digit.")]

    async def score() -> object:
        model = load_model(f"openai:smollm@{url}")
        try:
            return await model.score_choices(msgs, list("12345"))
        finally:
            await model.aclose()

    scores = asyncio.run(score())
    assert abs(sum(scores.probs) - 1) < 1e-9 and 0 < scores.coverage <= 1
    assert scores.top in "12345"
