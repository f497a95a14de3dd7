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
    with pytest.raises(InputError, match=r"rules\.0\.reply: Field required"):
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


def test_two_callables_never_share_cache_entries(tmp_path: Path) -> None:
    from personae.runtime import ResponseCache, Runner

    cache = ResponseCache(tmp_path / "c.sqlite3")
    a = ScriptedModel(lambda m, p: "alpha")
    b = ScriptedModel(lambda m, p: "beta")
    assert a.identity != b.identity
    for model, want in ((a, "alpha"), (b, "beta")):
        out = asyncio.run(Runner(model, cache=cache, progress="off").chat(HI))
        assert out.text == want


@pytest.mark.parametrize(
    ("content", "needle"),
    [("replies: null\n", "replies"), ("choices: [1, 2]\nreplies: [x]\n", "choices"),
     ("choices: {a: abc}\nreplies: [x]\n", "choices.a"), ("{}\n", "needs 'replies' or 'rules'"),
     ("hello: [x]\n", "hello")],
)
def test_scripted_file_shape_errors(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(content)
    with pytest.raises(InputError, match=needle):
        load_model(f"scripted:{path}")


def test_scripted_file_conveniences(tmp_path: Path) -> None:
    path = tmp_path / "M.YAML"
    path.write_text("replies: Hi\nchoices: {1: 0.25, 2: 0.75}\n")
    model = load_model(f"scripted:{path}?max_concurrency=3")
    assert asyncio.run(model.chat(HI, ChatParams())).text == "Hi"
    assert asyncio.run(model.score_choices(HI, ["1", "2"])).probs == pytest.approx([0.25, 0.75])
    assert model.max_concurrency == 3
