from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from personae.errors import CapabilityError, InputError
from personae.models import ChatParams, Message, ScriptedModel, load_model
from personae.models.base import Capability, ChoiceScores

HI = [Message(role="user", content="hello there")]


def test_rules_then_hashed_replies(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text('rules:\n  - {match: "(?i)hello", reply: "Hi!"}\nreplies: [A, B, C]\n'
                    'choices: {"1": 0.5, "2": 0.5}\n')
    model = load_model(f"scripted:{path}")
    assert asyncio.run(model.chat(HI, ChatParams())).text == "Hi!"
    other = [Message(role="user", content="what?")]
    first = asyncio.run(model.chat(other, ChatParams())).text
    assert first in {"A", "B", "C"}
    assert asyncio.run(model.chat(other, ChatParams())).text == first  # deterministic
    seeds = {asyncio.run(model.chat(other, ChatParams(seed=s))).text for s in range(20)}
    assert len(seeds) > 1  # the seed matters
    scores = asyncio.run(model.score_choices(other, ["1", "2", "3"]))
    assert scores.probs == [0.5, 0.5, 0.0] and sum(scores.probs) == 1


def test_bad_scripted_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [{match: x}]")
    with pytest.raises(InputError, match="'match' and 'reply'"):
        load_model(f"scripted:{bad}")
    bad.write_text("rules: [{match: '(', reply: x}]")
    with pytest.raises(InputError, match="bad rule pattern"):
        load_model(f"scripted:{bad}")


def test_choice_scores_renormalise() -> None:
    s = ChoiceScores.from_logprobs(["a", "b"], [-1.0, -2.0])
    assert abs(sum(s.probs) - 1) < 1e-12 and s.top == "a"
    assert 0 < s.coverage < 1 and s.expected_index == pytest.approx(s.probs[1])


def test_missing_capability_names_alternatives() -> None:
    model = ScriptedModel()
    with pytest.raises(CapabilityError, match="hidden_states.*hf"):
        model.require(Capability.HIDDEN_STATES)
