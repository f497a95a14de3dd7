"""The bundled model on both local backends: real weights, few tokens."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from personae.models import ChatParams, Message, load_model
from personae.models.hf import HFModel
from personae.models.llamacpp import LlamaCppModel
from personae.persona import load_bundled, render_system_prompt

pytestmark = pytest.mark.model

ITEMS = [
    "I am the life of the party.",
    "I get stressed out easily.",
    "I have a vivid imagination.",
    "I pay attention to details.",
    "I sympathize with others' feelings.",
]
LIKERT = ["1", "2", "3", "4", "5"]


def item_messages(persona_index: int, item: str) -> list[Message]:
    persona = load_bundled("sample")[persona_index]
    return [
        Message(role="system", content=render_system_prompt(persona, "personagym")),
        Message(role="user", content=f"How well does this describe you: \"{item}\" Answer with "
                "a number from 1 (very inaccurate) to 5 (very accurate)."),
    ]


@pytest.fixture(scope="module")
def llama() -> LlamaCppModel:
    return load_model("bundled")  # type: ignore[return-value]


@pytest.fixture(scope="module")
def hf() -> HFModel:
    return load_model("hf:bundled")  # type: ignore[return-value]


def test_bundled_chat_in_persona(llama: LlamaCppModel) -> None:
    persona = load_bundled("sample")[0]
    msgs = [Message(role="system", content=render_system_prompt(persona, "card")),
            Message(role="user", content="What is your name?")]
    out = asyncio.run(llama.chat(msgs, ChatParams(max_tokens=24, temperature=0)))
    assert out.text.strip() and out.completion_tokens <= 24
    assert "Chinedu" in out.text
    again = asyncio.run(llama.chat(msgs, ChatParams(max_tokens=24, temperature=0)))
    assert again.text == out.text  # greedy is deterministic


def test_bundled_logprobs(llama: LlamaCppModel) -> None:
    out = asyncio.run(llama.chat(item_messages(0, ITEMS[0]),
                                 ChatParams(max_tokens=3, temperature=0, top_logprobs=3)))
    assert out.logprobs and len(out.logprobs[0].top) == 3
    assert all(lp.logprob <= 0 for lp in out.logprobs)


def test_hf_chat_and_hidden_states(hf: HFModel) -> None:
    msgs = item_messages(1, ITEMS[1])
    out = asyncio.run(hf.chat(msgs, ChatParams(max_tokens=8, temperature=0)))
    assert out.text.strip() and out.completion_tokens <= 8
    states = hf.hidden_states(msgs)
    assert states.shape[0] == 31 and states.shape[2] == 576  # embeddings + 30 blocks
    assert np.isfinite(states).all()


def test_hf_batch_matches_single(hf: HFModel) -> None:
    params = ChatParams(max_tokens=6, temperature=0)
    reqs = [(item_messages(i, ITEMS[i]), params) for i in range(3)]
    batched = asyncio.run(hf.chat_batch(reqs))
    single = [asyncio.run(hf.chat(m, p)) for m, p in reqs]
    assert [b.text for b in batched] == [s.text for s in single]


def test_score_choices_agree_between_backends(llama: LlamaCppModel, hf: HFModel) -> None:
    agree = 0
    for i, item in enumerate(ITEMS):
        msgs = item_messages(i, item)
        a = asyncio.run(llama.score_choices(msgs, LIKERT, prefill="My answer: "))
        b = asyncio.run(hf.score_choices(msgs, LIKERT, prefill="My answer: "))
        for s in (a, b):
            assert sum(s.probs) == pytest.approx(1.0, abs=1e-9)
            assert s.coverage > 0.5  # prefilled: most mass lands on the digits
        assert max(abs(x - y) for x, y in zip(a.probs, b.probs, strict=True)) < 0.1
        agree += a.top == b.top
    assert agree >= 4


def test_multi_token_choices_do_not_disturb_generation(llama: LlamaCppModel) -> None:
    msgs = item_messages(0, ITEMS[0])
    p = ChatParams(max_tokens=8, temperature=0)
    before = asyncio.run(llama.chat(msgs, p)).text
    s = asyncio.run(llama.score_choices(msgs, ["very accurate", "very inaccurate", "neutral"],
                                        prefill="That is "))
    assert sum(s.probs) == pytest.approx(1.0) and len(set(s.probs)) == 3
    # Scoring evaluates tokens in the shared context; generation must replay, not reuse them.
    assert asyncio.run(llama.chat(msgs, p)).text == before
