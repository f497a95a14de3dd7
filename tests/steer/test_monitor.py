"""Monitoring: projections (pure), window planning, transcript formats, the bundled model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from personae.cli.steer import app
from personae.errors import InputError
from personae.steer.monitor import load_transcript, plan_windows
from personae.vectors.file import PersonaVector
from personae.vectors.projection import Projection, project

AXIS = Path("/work/shared/data/safety-research-assistant-axis/transcripts/persona_drift")


# -- projection ----------------------------------------------------------------------------

def test_projection_uses_the_unit_direction() -> None:
    acts = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 0.0]])
    np.testing.assert_allclose(project(acts, np.array([0.0, 5.0, 0.0])), [2.0, -1.0])
    with pytest.raises(InputError, match="zero vector"):
        project(acts, np.zeros(3))


def test_response_mean_is_over_response_tokens_only() -> None:
    rng = np.random.default_rng(0)
    acts, d = rng.normal(size=(9, 4)), rng.normal(size=4)
    p = Projection.of(acts, d, start=5)
    assert len(p.per_token) == 4
    np.testing.assert_allclose(p.per_token, project(acts, d)[5:])
    assert np.isclose(p.mean, p.per_token.mean())
    assert not np.isclose(p.mean, project(acts, d).mean())  # the prompt is not averaged in
    assert np.isnan(Projection.of(acts, d, start=9).mean)


@settings(max_examples=50, deadline=None)
@given(st.floats(-50, 50), st.integers(0, 2**16))
def test_adding_the_direction_moves_the_projection_by_the_coefficient(coef: float,
                                                                      seed: int) -> None:
    rng = np.random.default_rng(seed)
    acts, v = rng.normal(size=(6, 8)), rng.normal(size=8)
    unit = v / np.linalg.norm(v)
    np.testing.assert_allclose(project(acts + coef * unit, v), project(acts, v) + coef,
                               atol=1e-9)


# -- windows -------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.booleans()), min_size=1, max_size=30),
       st.integers(40, 200))
def test_windows_fit_and_score_every_turn_once(msgs: list[tuple[int, bool]],
                                               budget: int) -> None:
    counts = [c for c, _ in msgs]
    scored = [s for _, s in msgs]
    windows = plan_windows(counts, scored, budget)
    seen = [j for _, _, js in windows for j in js]
    assert seen == [j for j, s in enumerate(scored) if s]  # each once, in order
    for start, end, js in windows:
        assert sum(counts[start:end]) <= budget
        assert all(start <= j < end for j in js)
    starts = [w[0] for w in windows]
    assert starts == sorted(set(starts))  # strictly moving forward


def test_windows_keep_history_and_reject_a_message_that_cannot_fit() -> None:
    assert plan_windows([5, 5], [False, True], 100) == [(0, 2, [1])]
    windows = plan_windows([4] * 6, [False, True] * 3, 12)
    assert windows == [(0, 3, [1]), (2, 5, [3]), (4, 6, [5])]
    with pytest.raises(ValueError, match="message 3 has 50 tokens"):
        plan_windows([5, 5, 50], [False, True, True], 20, first_index=1)


# -- transcript formats --------------------------------------------------------------------

CONV = [{"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi, who are you?"},
        {"role": "assistant", "content": "I am a helpful assistant."},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "Why did the chicken cross the road?"}]


def _roles(convs: list) -> list[list[str]]:
    return [[m.role for m in c] for c in convs]


def test_transcript_formats(tmp_path: Path) -> None:
    roles = [m["role"] for m in CONV]
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(CONV))
    axis = tmp_path / "axis.json"
    axis.write_text(json.dumps({"model": "m", "persona": "a user persona", "turns": 2,
                                "conversation": CONV[1:]}))
    many = tmp_path / "many.json"
    many.write_text(json.dumps([{"messages": CONV}, CONV[1:3]]))
    per_message = tmp_path / "msgs.jsonl"
    per_message.write_text("\n".join(json.dumps(m) for m in CONV) + "\n\n")
    per_conv = tmp_path / "convs.jsonl"
    per_conv.write_text(json.dumps({"conversation": CONV}) + "\n" + json.dumps(CONV[1:3]))
    assert _roles(load_transcript(plain)) == [roles]
    assert _roles(load_transcript(axis)) == [roles[1:]]  # the user persona is not a message
    assert _roles(load_transcript(many)) == [roles, roles[1:3]]
    assert _roles(load_transcript(per_message)) == [roles]
    assert _roles(load_transcript(per_conv)) == [roles, roles[1:3]]
    assert load_transcript(plain)[0][2].content == "I am a helpful assistant."


@pytest.mark.skipif(not AXIS.is_dir(), reason="Assistant Axis transcripts not present")
def test_assistant_axis_persona_drift_files_load() -> None:
    for path in sorted(AXIS.glob("*.json")):
        (conv,) = load_transcript(path)
        assert conv[0].role == "user" and sum(m.role == "assistant" for m in conv) >= 14


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("a.json", '[{"role": "tool", "content": "x"}]', "message 0: role: Input should be"),
    ("b.json", '[{"role": "user"}]', "message 0: content: Field required"),
    ("c.json", '[{"role": "user", "content": "hi"}]', "no assistant messages"),
    ("d.json", '{"turns": 3}', "expected a list of chat messages"),
    ("e.json", "[{", "not valid JSON"),
    ("f.jsonl", '{"role": "user", "content": "hi"}\n{"role": ', "f.jsonl:2: not valid JSON"),
    ("g.jsonl", "\n", "empty transcript"),
])
def test_bad_transcripts_are_one_line_errors(tmp_path: Path, name: str, content: str,
                                             needle: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError) as info:
        load_transcript(path)
    assert "\n" not in str(info.value) and needle in str(info.value)
    assert str(info.value).startswith(str(path))
    with pytest.raises(InputError, match="no such transcript file"):
        load_transcript(tmp_path / "absent.json")


def test_monitor_cli_rejects_a_missing_vector(tmp_path: Path) -> None:
    t = tmp_path / "t.json"
    t.write_text(json.dumps(CONV))
    result = CliRunner().invoke(app, ["monitor", str(t), "--vector",
                                      str(tmp_path / "v.safetensors"), "--layer", "3"])
    assert isinstance(result.exception, InputError)
    assert "v.safetensors: no such vector file" in str(result.exception)
    assert result.stdout == ""


# -- `personae simulate` transcripts --------------------------------------------------------

def sim_row(cid: str, lines: list[tuple[str, str]], agents: tuple[str, ...] = ("ana", "bo"),
            ) -> dict:
    """A transcripts.jsonl row as personae.sim.summary.transcript_rows writes it."""
    seen: dict[str, int] = {}
    turns = []
    for i, (speaker, text) in enumerate(lines):
        seen[speaker] = seen.get(speaker, 0) + 1
        turns.append({"index": i, "turn": seen[speaker], "speaker": speaker,
                      "name": speaker.title(), "role": "persona", "text": text,
                      "end_signal": False, "started": 1.0 + i, "latency_s": 0.2,
                      "completion_tokens": 4, "scripted": False})
    return {"conversation_id": cid, "persona_ids": list(agents),
            "agents": [{"id": a, "name": a.title(), "role": "persona", "persona_id": a}
                       for a in agents],
            "seed": 0, "stop_reason": "max_turns", "turns": turns}


SIM_LINES = [("ana", "Hello, I fix bicycles."), ("bo", "Nice! I bake bread."),
             ("cy", "Can I join?"), ("ana", "Sure, Cy."), ("bo", ""), ("ana", "Bye!")]


def test_simulate_views_are_the_simulation_own_views(tmp_path: Path) -> None:
    from personae.sim.agents import OPENER, Agent, Turn, egocentric_view
    from personae.steer.monitor import SIM_OPENER, load_views

    assert SIM_OPENER == OPENER
    path = tmp_path / "transcripts.jsonl"
    rows = [sim_row("c1", SIM_LINES, ("ana", "bo", "cy")),
            sim_row("c2", [("bo", "Morning."), ("ana", "Hi.")])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    views = load_views(path)
    # Every agent with something said gets a view; bo's only c1 line after the first is empty.
    assert [(v.conversation, v.conversation_id, v.agent) for v in views] == [
        (0, "c1", "ana"), (0, "c1", "bo"), (0, "c1", "cy"), (1, "c2", "ana"), (1, "c2", "bo")]
    for v in views:
        row = rows[v.conversation]
        turns = [Turn(conversation_id=row["conversation_id"], **{
            k: t[k] for k in ("index", "turn", "speaker", "name", "role", "text")})
            for t in row["turns"]]
        agent = Agent(v.agent, v.agent.title(), "persona", "SYSTEM")
        # The simulation's view of the whole conversation, minus its system prompt (the file
        # does not hold it) and the "(Go on.)" it appends to ask for the next turn.
        expected = [(m.role, m.content) for m in egocentric_view(agent, turns, window=0)][1:]
        if expected[-1] == ("user", "(Go on.)"):
            expected.pop()
        assert [(m.role, m.content) for m in v.messages] == expected
    ana = views[0]
    assert ana.messages[0].content == OPENER and ana.positions[0] == -1
    assert [(p, t) for p, s, t in zip(ana.positions, ana.scored, ana.own_turns, strict=True)
            if s] == [(0, 0), (3, 1), (5, 2)]
    bo = views[1]
    assert bo.messages[2].content == "Cy: Can I join?\n\nAna: Sure, Cy."  # merged
    assert bo.positions[2] == 2
    assert [m.content for m, s in zip(bo.messages, bo.scored, strict=True) if s] == [
        "Nice! I bake bread."]  # the empty line is shown as "…", not scored
    assert [v.agent for v in load_views(path, agents=["cy", "bo"])] == ["bo", "cy", "bo"]
    assert [m.role for m in load_transcript(path)[2]] == ["user", "assistant", "user"]


@pytest.mark.parametrize(("rows", "agents", "needle"), [
    ([{**sim_row("c1", SIM_LINES[:2]), "turns": "x"}], None,
     "expected a list of chat messages"),
    ([sim_row("c1", SIM_LINES[:2]), {"role": "user", "content": "hi"}], None,
     ":2: not a `personae simulate` transcript row"),
    ([{**sim_row("c1", SIM_LINES[:2]), "agents": []}], None,
     ":1: agents: List should have at least 1 item"),
    ([sim_row("c1", [("ana", "Hi"), ("zed", "Yo")])], None,
     ":1: turn 1: speaker 'zed' is not one of the conversation's agents (ana, bo)"),
    ([sim_row("c1", SIM_LINES[:2])], ["zed"],
     "no agent 'zed' in this transcript (agents: ana, bo)"),
    ([sim_row("c1", [("ana", ""), ("bo", "")])], None, "no turns with text to score"),
])
def test_bad_simulate_transcripts_are_one_line_errors(tmp_path: Path, rows: list,
                                                      agents: list | None, needle: str) -> None:
    from personae.steer.monitor import load_views

    path = tmp_path / "transcripts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError) as info:
        load_views(path, agents=agents)
    assert "\n" not in str(info.value) and needle in str(info.value)
    assert str(info.value).startswith(str(path))


def test_agents_are_only_for_simulate_transcripts(tmp_path: Path) -> None:
    from personae.steer.monitor import load_views

    path = tmp_path / "t.json"
    path.write_text(json.dumps(CONV))
    with pytest.raises(InputError, match="choosing agents needs a `personae simulate`"):
        load_views(path, agents=["ana"])


# -- the bundled model ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def hf():
    from personae.models import load_model

    return load_model("hf:bundled")


def _random_vector() -> PersonaVector:
    rng = np.random.default_rng(7)
    return PersonaVector.from_array(rng.normal(size=(30, 576)), trait="random", model="x",
                                    position="response_avg", method="mean_diff")


@pytest.mark.model
def test_transcript_scores_match_an_independent_forward(hf, tmp_path: Path) -> None:
    from personae.models import Message
    from personae.models.whitebox import score_responses
    from personae.steer.monitor import score_transcript

    path = tmp_path / "t.json"
    path.write_text(json.dumps(CONV))
    vec, layer = _random_vector(), 12
    scores = score_transcript(hf, vec, path, layer, progress=False)
    assert [(s.turn, s.assistant_turn, s.conversation) for s in scores] == [(2, 0, 0), (4, 1, 0)]
    msgs = [Message(**m) for m in CONV]
    for s in scores:
        assert s.layer == layer and s.context_start == 0
        assert s.n_tokens == len(s.per_token) == len(s.tokens) > 0
        assert "".join(s.tokens) == CONV[s.turn]["content"]
        assert np.isclose(s.mean, np.mean(s.per_token))
        # Independent path: one unbatched forward of the prefix + this reply, row layer + 1.
        hs = hf.hidden_states(msgs[: s.turn], prefill=CONV[s.turn]["content"])
        expected = hs[layer + 1, -s.n_tokens:] @ vec.unit(layer)
        np.testing.assert_allclose(s.per_token, expected, rtol=1e-4, atol=1e-3)
    batch = score_responses(hf, vec, layer, [(msgs[: s.turn], CONV[s.turn]["content"])
                                             for s in scores])
    for p, s in zip(batch, scores, strict=True):
        np.testing.assert_allclose(p.per_token, s.per_token, rtol=1e-4, atol=1e-3)

    # A context too small for the whole conversation: scored in windows, same turns.
    windowed = score_transcript(hf, vec, path, layer, max_context=50, progress=False)
    assert [s.turn for s in windowed] == [2, 4]
    assert windowed[0].per_token == pytest.approx(scores[0].per_token, abs=1e-3)
    assert windowed[0].context_start == 0 and windowed[1].context_start == 3
    assert windowed[1].n_tokens == scores[1].n_tokens


@pytest.mark.model
def test_monitor_cli_writes_json_lines(hf, tmp_path: Path) -> None:
    vec_path = _random_vector().save(tmp_path / "r.safetensors")
    t = tmp_path / "t.jsonl"
    t.write_text("\n".join(json.dumps(m) for m in CONV))
    result = CliRunner().invoke(app, ["monitor", str(t), "--vector", str(vec_path),
                                      "--layer", "5"])
    assert result.exit_code == 0, (result.output, result.exception)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["turn"] for r in rows] == [2, 4]
    assert all(np.isclose(r["mean"], np.mean(r["per_token"])) for r in rows)
    out = tmp_path / "scores.jsonl"
    result = CliRunner().invoke(app, ["monitor", str(t), "--vector", str(vec_path),
                                      "--layer", "5", "--out", str(out)])
    assert result.exit_code == 0 and result.stdout == ""
    assert [json.loads(x) for x in out.read_text().splitlines()] == rows
    bad = CliRunner().invoke(app, ["monitor", str(t), "--vector", str(vec_path), "--layer", "30"])
    assert isinstance(bad.exception, InputError) and "layers 0..29" in str(bad.exception)


@pytest.mark.model
def test_steering_along_the_vector_raises_its_projection(hf) -> None:
    """End to end: a model steered by ``coef × unit(v[L])`` at block L projects exactly
    ``coef`` higher on v at layer L (the hook adds to what the monitor reads)."""
    from personae.models import Message
    from personae.models.whitebox import score_responses
    from personae.vectors.steering import steerings_for

    vec, layer, coef = _random_vector(), 9, 6.0
    items = [([Message(role="user", content="Tell me about your weekend.")],
              "I went hiking with friends and loved it!")]
    (plain,) = score_responses(hf, vec, layer, items)
    (steered,) = score_responses(hf.with_steering(steerings_for(vec, layer, coef)), vec, layer,
                                 items)
    np.testing.assert_allclose(steered.per_token, plain.per_token + coef, atol=1e-3)
    (later,) = score_responses(hf.with_steering(steerings_for(vec, layer, coef)), vec,
                               layer + 3, items)
    (later_plain,) = score_responses(hf, vec, layer + 3, items)
    assert not np.allclose(later.per_token, later_plain.per_token, atol=1e-3)  # it propagates


@pytest.mark.model
def test_monitor_scores_each_agent_of_a_simulate_transcript_in_its_own_view(
        hf, tmp_path: Path) -> None:
    from personae.models.whitebox import score_responses
    from personae.steer.monitor import load_views

    vec, layer = _random_vector(), 7
    vec_path = vec.save(tmp_path / "r.safetensors")
    path = tmp_path / "transcripts.jsonl"
    path.write_text(json.dumps(sim_row("c1", SIM_LINES[:4], ("ana", "bo", "cy"))) + "\n")
    result = CliRunner().invoke(app, ["monitor", str(path), "-v", str(vec_path), "-l",
                                      str(layer), "--agent", "ana", "--agent", "bo"])
    assert result.exit_code == 0, (result.output, result.exception)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["conversation_id"], r["agent"], r["turn"], r["assistant_turn"]) for r in rows] \
        == [("c1", "ana", 0, 0), ("c1", "ana", 3, 1), ("c1", "bo", 1, 0)]
    # Independent path: each turn read as the reply to what its speaker saw before it.
    views = {v.agent: v for v in load_views(path)}
    for r in rows:
        view = views[r["agent"]]
        j = view.positions.index(r["turn"])
        (p,) = score_responses(hf, vec, layer, [(list(view.messages[:j]),
                                                 view.messages[j].content)])
        assert "".join(r["tokens"]) == view.messages[j].content
        np.testing.assert_allclose(r["per_token"], p.per_token, rtol=1e-4, atol=1e-3)
