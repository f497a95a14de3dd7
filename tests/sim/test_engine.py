"""The conversation engine: egocentric views, memory window, termination, turn taking,
resume after a failure, and conversations in parallel against a real loopback server."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from personae.errors import RunError
from personae.models import ChatParams, Message
from personae.models.openai_compat import OpenAIModel
from personae.models.scripted import ScriptedModel
from personae.runtime import Runner
from personae.runtime.store import RunStore
from personae.sim.agents import OPENER, Agent, Turn, clean_reply, egocentric_view
from personae.sim.engine import ConversationPlan, Engine, load_states
from personae.sim.termination import is_repetition, near_identical
from personae.testing.loopback import LoopbackServer

ANA = Agent("ana", "Ana", "persona", "You are Ana, a nurse.")
BO = Agent("bo", "Bo", "user", "You are Bo.")
CY = Agent("cy", "Cy", "persona", "You are Cy.")


def _turns(*speakers: Agent, conversation: str = "c") -> list[Turn]:
    counts: dict[str, int] = {}
    out = []
    for i, a in enumerate(speakers):
        counts[a.id] = counts.get(a.id, 0) + 1
        out.append(Turn(conversation_id=conversation, index=i, turn=counts[a.id],
                        speaker=a.id, name=a.name, role=a.role, text=f"line {i} by {a.name}"))
    return out


# -- views ------------------------------------------------------------------------------
def test_view_is_egocentric_with_names_on_other_speakers() -> None:
    turns = _turns(BO, ANA, BO)
    ana = egocentric_view(ANA, turns, window=10)
    assert [(m.role, m.content) for m in ana] == [
        ("system", ANA.system), ("user", "Bo: line 0 by Bo"),
        ("assistant", "line 1 by Ana"), ("user", "Bo: line 2 by Bo")]
    bo = egocentric_view(BO, turns, window=10)
    # Bo opened: his view starts as it did then, so roles alternate from a user message.
    assert [m.role for m in bo] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert bo[1].content == OPENER and bo[3].content == "Ana: line 1 by Ana"
    assert bo[-1].content == "(Go on.)"  # a view never ends on the agent's own line


def test_window_keeps_the_persona_and_only_the_last_turns() -> None:
    turns = _turns(*([BO, ANA] * 20))
    view = egocentric_view(ANA, turns, window=4)
    assert view[0] == Message(role="system", content=ANA.system)
    assert "not shown" in view[1].content
    shown = " ".join(m.content for m in view[1:])
    assert "line 39" in shown and "line 36" in shown and "line 35" not in shown
    assert len(egocentric_view(ANA, turns, window=0)) == 1 + 40 + 1  # 0: all, then "(Go on.)"


def test_group_view_merges_consecutive_others_and_opens_when_empty() -> None:
    view = egocentric_view(ANA, _turns(ANA, BO, CY), window=10)
    assert [m.role for m in view] == ["system", "user", "assistant", "user"]
    assert view[-1].content == "Bo: line 1 by Bo\n\nCy: line 2 by Cy"
    first = egocentric_view(ANA, [], window=10)
    assert [m.role for m in first] == ["system", "user"] and "first" in first[1].content


def test_clean_reply_strips_the_end_signal_and_a_copied_name() -> None:
    assert clean_reply("Ana: Goodbye then. [END]", "Ana") == ("Goodbye then.", True)
    assert clean_reply("**Ana**: hello", "Ana") == ("hello", False)
    assert clean_reply("Banana: hello", "Ana") == ("Banana: hello", False)


def test_repetition_detector() -> None:
    assert near_identical("Well, I fix cars all day.", "well i fix cars all day!!")
    assert not near_identical("I fix cars all day.", "My daughter studies in Lagos.")
    assert not near_identical("", "")
    assert is_repetition("I like tea.", ["Hello.", "I like tea!"])
    assert is_repetition("I like tea.", [None, "i like TEA"])
    assert not is_repetition("I like tea.", [None, "Something else."])


# -- the engine -------------------------------------------------------------------------
def _own_turn(messages: Sequence[Message]) -> int:
    return sum(m.role == "assistant" for m in messages) + 1


def _speaker(messages: Sequence[Message]) -> str:
    return messages[0].content.split(",")[0].removeprefix("You are ")


WORDS = "river bread engine winter letter garden ticket harbour cousin radio bridge".split()


def varied(messages: Sequence[Message], params: ChatParams) -> str:
    """A different line for every speaker and turn (so no repetition stop)."""
    n, who = _own_turn(messages), _speaker(messages)
    digest = hashlib.sha256(f"{who}{n}".encode()).digest()
    picks = [WORDS[b % len(WORDS)] for b in digest[:6]]
    return f"{who} says thing number {n}: " + " ".join(picks * (1 + n % 3))


def _engine(tmp_path: Path, model: ScriptedModel, *, max_turns: int = 6, window: int = 8,
            **kw: object) -> Engine:
    return Engine(RunStore(tmp_path / "run"), Runner(model, progress="off"),
                  ChatParams(max_tokens=32), max_turns, window, **kw)  # type: ignore[arg-type]


def _stored(engine: Engine, conversation: str) -> list[dict]:
    return sorted((r for _, r in engine.store.items("turn")
                   if r["conversation_id"] == conversation), key=lambda r: r["index"])


def test_conversation_alternates_and_stops_at_max_turns(tmp_path: Path) -> None:
    engine = _engine(tmp_path, ScriptedModel(varied, name="v"), max_turns=5)
    states = asyncio.run(engine.run([ConversationPlan("c", (BO, ANA))], concurrency=1,
                                    progress="off"))
    rows = _stored(engine, "c")
    assert [r["speaker"] for r in rows] == ["bo", "ana", "bo", "ana", "bo"]
    assert [r["turn"] for r in rows] == [1, 1, 2, 2, 3]
    assert rows[3]["text"].startswith("Ana says thing number 2")
    assert states["c"].stop_reason == "max_turns"
    assert engine.store.get("end", "c") == {"conversation_id": "c", "stop_reason": "max_turns",
                                            "n_turns": 5}


def test_end_signal_and_repetition_stop_a_conversation(tmp_path: Path) -> None:
    ends = ScriptedModel(lambda m, p: "Lovely talking. [END]" if _own_turn(m) == 2
                         else varied(m, p), name="ends")
    engine = _engine(tmp_path / "a", ends, max_turns=10)
    asyncio.run(engine.run([ConversationPlan("c", (BO, ANA))], concurrency=1, progress="off"))
    rows = _stored(engine, "c")
    assert len(rows) == 3 and rows[-1]["end_signal"] and rows[-1]["text"] == "Lovely talking."
    assert engine.store.get("end", "c")["stop_reason"] == "end_signal"

    loops = ScriptedModel(["I only ever say this one thing."], name="loop")
    engine = _engine(tmp_path / "b", loops, max_turns=10)
    asyncio.run(engine.run([ConversationPlan("c", (BO, ANA))], concurrency=1, progress="off"))
    assert engine.store.get("end", "c") == {"conversation_id": "c", "stop_reason": "repetition",
                                            "n_turns": 2}


def test_scripted_user_lines_then_script_end(tmp_path: Path) -> None:
    user = Agent("user", "User", "user", "", script=("Hi!", "Where do you work?"))
    model = ScriptedModel(varied, name="v")
    engine = _engine(tmp_path, model, max_turns=10)
    asyncio.run(engine.run([ConversationPlan("c", (user, ANA))], concurrency=1, progress="off"))
    rows = _stored(engine, "c")
    assert [r["text"] for r in rows[::2]] == ["Hi!", "Where do you work?"]
    assert all(r["scripted"] for r in rows[::2]) and len(rows) == 4
    assert model.calls == 2
    assert engine.store.get("end", "c")["stop_reason"] == "script_end"


def test_a_failed_turn_stops_only_its_conversation_and_a_rerun_resumes_it(
        tmp_path: Path) -> None:
    broken = {"on": True}

    def flaky(messages: Sequence[Message], params: ChatParams) -> str:
        if broken["on"] and _speaker(messages) == "Ana" and _own_turn(messages) == 3:
            raise RunError("server said no")
        return varied(messages, params)

    plans = [ConversationPlan("c1", (BO, ANA)), ConversationPlan("c2", (BO, CY))]
    model = ScriptedModel(flaky, name="flaky")
    engine = _engine(tmp_path, model, max_turns=8)
    asyncio.run(engine.run(plans, concurrency=2, progress="off"))
    assert len(_stored(engine, "c1")) == 5 and engine.store.get("end", "c1") is None
    assert len(_stored(engine, "c2")) == 8 and len(engine.failures) == 1
    before = _stored(engine, "c1")

    broken["on"] = False
    again = Engine(RunStore(tmp_path / "run"), Runner(model, progress="off"),
                   ChatParams(max_tokens=32), 8, 8)
    calls = model.calls
    asyncio.run(again.run(plans, concurrency=2, progress="off"))
    rows = _stored(again, "c1")
    assert [r["index"] for r in rows] == list(range(8)) and rows[:5] == before
    assert model.calls - calls == 3  # only c1's missing turns; c2 was finished

    # The resumed transcript is the one an uninterrupted run writes.
    fresh = _engine(tmp_path / "fresh", ScriptedModel(varied, name="v2"), max_turns=8)
    asyncio.run(fresh.run(plans[:1], concurrency=1, progress="off"))
    assert [r["text"] for r in _stored(fresh, "c1")] == [r["text"] for r in rows]


def test_judge_policy_picks_a_speaker_other_than_the_last_and_stores_it(tmp_path: Path) -> None:
    judge = ScriptedModel(["B"], name="judge", choices={"A": 0.1, "B": 0.9})
    engine = _engine(tmp_path, ScriptedModel(varied, name="v"), max_turns=7, policy="judge",
                     judge=Runner(judge, progress="off"))
    agents = (ANA, BO, CY)
    asyncio.run(engine.run([ConversationPlan("g", agents)], concurrency=1, progress="off"))
    rows = _stored(engine, "g")
    speakers = [r["speaker"] for r in rows]
    assert speakers[0] == "ana"
    assert all(a != b for a, b in zip(speakers, speakers[1:], strict=False))
    # B is always the second of the two who did not just speak.
    for prev, now in zip(speakers, speakers[1:], strict=False):
        others = [a.id for a in agents if a.id != prev]
        assert now == others[1]
    picks = dict(engine.store.items("speaker"))
    assert len(picks) == 6 and {p["method"] for p in picks.values()} == {"logprobs"}


def test_state_holds_only_the_window(tmp_path: Path) -> None:
    calls = iter(range(1000))
    counting = ScriptedModel(lambda m, p: " ".join(
        WORDS[b % len(WORDS)] for b in hashlib.sha256(str(next(calls)).encode()).digest()[:6]),
        name="count")
    engine = _engine(tmp_path, counting, max_turns=60, window=4)
    states = asyncio.run(engine.run([ConversationPlan("c", (BO, ANA))], concurrency=1,
                                    progress="off"))
    assert states["c"].n_turns == 60 and len(states["c"].recent) == 5
    reloaded = load_states(engine.store, [ConversationPlan("c", (BO, ANA))], window=4)
    assert len(reloaded["c"].recent) == 5 and reloaded["c"].counts == {"bo": 30, "ana": 30}


@pytest.mark.server
def test_conversations_run_in_parallel_against_a_real_server(tmp_path: Path) -> None:
    plans = [ConversationPlan(f"c{i}", (BO, ANA), seed=i) for i in range(12)]
    with LoopbackServer(delay_s=0.05, varied=True) as server:
        model = OpenAIModel("loop", base_url=server.base_url, concurrency=8)

        async def main() -> None:
            engine = Engine(RunStore(tmp_path / "run"), Runner(model, progress="off"),
                            ChatParams(max_tokens=32), 6, 3)
            try:
                await engine.run(plans, concurrency=8, progress="off")
            finally:
                await model.aclose()

        asyncio.run(main())
        bodies = list(server.bodies)
        peak = server.peak_in_flight
    store = RunStore(tmp_path / "run")
    assert store.counts() == {"end": 12, "turn": 72}
    assert peak == 8  # eight conversations at once, never more
    # Window 3: system prompt + the marker + 3 turns at most, however long it got.
    assert max(len(b["messages"]) for b in bodies) <= 5


@pytest.mark.parametrize("last", ["max_turns", "end_signal", "repetition"])
def test_killed_between_the_last_turn_and_its_end_record(tmp_path: Path, last: str) -> None:
    """A re-run works the stop out again from the stored turns: no turn after the end."""
    def lines(messages: Sequence[Message], params: ChatParams) -> str:
        n = len(messages)
        if last == "end_signal" and n >= 4:
            return "Goodbye now. [END]"
        if last == "repetition" and n >= 4:
            return "I say this again and again."
        return varied(messages, params)

    model = ScriptedModel(lines, name=last)
    engine = _engine(tmp_path, model, max_turns=6, window=10)
    asyncio.run(engine.run([ConversationPlan("c", (BO, ANA))], concurrency=1, progress="off"))
    end = engine.store.get("end", "c")
    assert end is not None and end["stop_reason"] == last
    rows = _stored(engine, "c")
    with engine.store._db:  # the kill: the end record never made it to disk
        engine.store._db.execute("DELETE FROM records WHERE kind = 'end'")
    calls = model.calls
    again = Engine(RunStore(tmp_path / "run"), Runner(model, progress="off"),
                   ChatParams(max_tokens=32), 6, 10)
    asyncio.run(again.run([ConversationPlan("c", (BO, ANA))], concurrency=1, progress="off"))
    assert model.calls == calls and _stored(again, "c") == rows
    assert again.store.get("end", "c") == end


def test_repetition_is_a_speaker_repeating_itself_in_a_group_not_a_script(
        tmp_path: Path) -> None:
    same = ScriptedModel(lambda m, p: "I fix cars in Enugu, as always." if "Cy" in
                         m[0].content else varied(m, p), name="cy-loops")
    engine = _engine(tmp_path / "g", same, max_turns=12)
    asyncio.run(engine.run([ConversationPlan("g", (ANA, BO, CY))], concurrency=1,
                           progress="off"))
    # Cy's second line, three turns after its first, ends the conversation.
    assert engine.store.get("end", "g") == {"conversation_id": "g", "stop_reason": "repetition",
                                            "n_turns": 6}
    user = Agent("user:script", "User", "user", "", script=("Tell me more.", "Tell me more!",
                                                            "Thanks."))
    engine = _engine(tmp_path / "s", ScriptedModel(varied, name="v"), max_turns=12)
    asyncio.run(engine.run([ConversationPlan("s", (user, ANA))], concurrency=1, progress="off"))
    assert engine.store.get("end", "s")["stop_reason"] == "script_end"  # a script may repeat


def test_judge_policy_asks_in_words_when_the_judge_has_no_probabilities(
        tmp_path: Path) -> None:
    from personae.errors import CapabilityError

    class Words(ScriptedModel):
        probes = 0

        async def score_choices(self, *a: object, **k: object):
            self.probes += 1
            raise CapabilityError("no logprobs")

    judge = Words(["B."], name="words")
    engine = _engine(tmp_path, ScriptedModel(varied, name="v"), max_turns=5, policy="judge",
                     judge=Runner(judge, progress="off"))
    asyncio.run(engine.run([ConversationPlan("g", (ANA, BO, CY))], concurrency=1,
                           progress="off"))
    picks = [r for _, r in engine.store.items("speaker")]
    assert len(picks) == 4 and {p["method"] for p in picks} == {"text"}
    assert judge.probes == 1 and judge.calls == 4  # one probe, then words only


def test_repeat_ratio_decides_what_counts_as_a_loop(tmp_path: Path) -> None:
    """An echo with one word changed in ten stops at 0.9, not at 1.0 (word for word only)."""
    base = "I fix cars in Enugu with my two young apprentices every single day"

    for ratio, reason in ((0.9, "repetition"), (1.0, "max_turns")):
        calls = iter(range(100))
        echo = ScriptedModel(lambda m, p: base.replace("single", f"w{next(calls)}"),
                             name=f"e{ratio}")
        engine = _engine(tmp_path / str(ratio), echo,
                         max_turns=4, window=0, repeat_ratio=ratio)
        asyncio.run(engine.run([ConversationPlan("c", (BO, ANA))], concurrency=1,
                               progress="off"))
        assert engine.store.get("end", "c")["stop_reason"] == reason, ratio
