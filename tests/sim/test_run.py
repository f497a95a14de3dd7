"""Simulation runs end to end on scripted agents: the drift the metrics must find, resume,
transcripts, and the run's settings guard."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from personae.errors import CapabilityError, InputError
from personae.models import ChatParams, ChoiceScores, Message
from personae.models.scripted import ScriptedModel
from personae.report import render_report
from personae.sim import SimConfig, SimResult, run_simulation

STAYS = ["I fix engines all day in my roadside workshop in Enugu.",
         "My two apprentices are learning to tune carburettors.",
         "Spare parts come from Onitsha market, the prices keep rising.",
         "After work I watch football with my brothers.",
         "A customer brought me a Peugeot 504 with a cracked radiator.",
         "I want to buy a proper diagnostic computer for the workshop.",
         "On Sundays my family goes to church and I rest my hands.",
         "The dust of the dry season gets into every engine."]
LEAKS = ["As an AI language model, I do not have personal experiences.",
         "As an AI, I cannot have a family or hobbies of my own.",
         "I am a language model, so I cannot share opinions of my own.",
         "As an AI language model, I was not born anywhere.",
         "I'm an AI assistant. How can I help you today?",
         "As a large language model I have no feelings to talk about."]


def _personas(tmp_path: Path) -> Path:
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump([
        {"id": "chinedu", "name": "Chinedu",
         "summary": "A 41-year-old auto mechanic from Enugu, Nigeria, who runs a busy "
                    "roadside workshop with two apprentices.",
         "facts": ["I am a mechanic.", "I live in Enugu."]},
        {"id": "rosa", "name": "Rosa",
         "summary": "A 33-year-old alpaca herder and weaver from a highland community near "
                    "Cusco, Peru, who sells textiles at the market.",
         "facts": ["I weave textiles.", "I herd alpacas."]},
    ]))
    return path


ROSA = ["My alpacas graze high above the village at dawn.",
        "I dye the wool with cochineal and plants from the valley.",
        "At the Sunday market in Pisac I sell my weavings to visitors.",
        "My grandmother taught me the old patterns of our community.",
        "The rainy season makes the mountain paths slippery for the herd.",
        "I am saving money so my daughter can study in Cusco.",
        "A good poncho takes me almost three weeks on the loom.",
        "We celebrate the harvest with music, chicha and dancing."]


def agent_lines(messages: Sequence[Message], params: ChatParams) -> str:
    """Chinedu stays in persona; Rosa says she is an AI from her fifth turn on."""
    own = sum(m.role == "assistant" for m in messages)  # this is turn own + 1
    if messages[0].content.startswith("You are Chinedu") or "Chinedu" in messages[0].content[:80]:
        return STAYS[own % len(STAYS)]
    return ROSA[own % len(ROSA)] if own < 4 else LEAKS[(own - 4) % len(LEAKS)]


class WordsJudge(ScriptedModel):
    """A judge that answers in words only (no logprobs): 1 for an AI-identity line, else 5;
    NLI: neutral."""

    async def score_choices(self, messages: Sequence[Message], choices: Sequence[str], *,
                            prefill: str = "") -> ChoiceScores:
        raise CapabilityError("no logprobs here")


def _judge(messages: Sequence[Message], params: ChatParams) -> str:
    text = messages[-1].content.partition("The persona's message:")[2]
    if "inference" in messages[0].content:
        return "neutral"
    return "1" if "language model" in text or "As an AI" in text or "I'm an AI" in text \
        else "5"


def _run(tmp_path: Path, **kw: object) -> SimResult:
    settings: dict = {"personas": str(_personas(tmp_path)), "group": True, "turns": 20,
                      "window": 0, "model": "scripted:agents", "judge": "scripted:judge",
                      "progress": "off", "metrics": ["fidelity", "similarity", "leak", "echo"]}
    cfg = SimConfig(**{**settings, **kw})
    return run_simulation(cfg, tmp_path / "run", use_cache=False,
                          model=ScriptedModel(agent_lines, name="agents"),
                          judge=WordsJudge(_judge, name="judge"))


@pytest.mark.local  # MiniLM similarity
def test_drift_first_out_of_persona_turn_and_slopes(tmp_path: Path) -> None:
    result = _run(tmp_path)
    groups = {g["id"]: g for g in result.summary["groups"]}
    stays, drifts = groups["chinedu"], groups["rosa"]
    assert drifts["first_out_of_persona"]["turns"] == [5]
    assert stays["first_out_of_persona"]["turns"] == [None]
    # Every in-persona measure (higher is better) falls for Rosa only.
    for metric in ("fidelity", "similarity"):
        assert drifts["metrics"][metric]["slope"]["sign"] == "negative", metric
        assert stays["metrics"][metric]["slope"]["sign"] != "negative", metric
        assert drifts["metrics"][metric]["slope"]["value"] < 0
    assert stays["metrics"]["fidelity"]["slope"]["value"] == 0.0
    assert drifts["metrics"]["leak"]["slope"]["sign"] == "positive"
    assert drifts["metrics"]["leak"]["first_past"]["turns"] == [5]
    assert drifts["metrics"]["fidelity"]["first_past"]["turns"] == [5]
    curve = {p["turn"]: p["value"] for p in drifts["metrics"]["leak"]["curve"]}
    assert curve == {t: (1.0 if t >= 5 else 0.0) for t in range(1, 11)}


@pytest.mark.local  # MiniLM similarity
def test_outputs_transcripts_and_resume(tmp_path: Path) -> None:
    first = _run(tmp_path)
    run_dir = first.run_dir
    rows = [json.loads(line) for line in (run_dir / "transcripts.jsonl").read_text()
            .splitlines()]
    assert len(rows) == 1 and rows[0]["conversation_id"] == "group--0"
    assert rows[0]["persona_ids"] == ["chinedu", "rosa"] and rows[0]["stop_reason"] == "max_turns"
    turns = rows[0]["turns"]
    assert [t["index"] for t in turns] == list(range(20))
    assert [t["speaker"] for t in turns[:4]] == ["chinedu", "rosa", "chinedu", "rosa"]
    assert all(t["latency_s"] >= 0 and t["started"] > 0 for t in turns)
    html = render_report(first.summary, run_dir).read_text()
    assert "<svg" in html and "As an AI language model" in html
    assert json.loads((run_dir / "summary.json").read_text())["run"]["counts"]["turns"] == 20
    again = _run(tmp_path)
    assert again.model_calls == 0 and again.summary == first.summary


@pytest.mark.local  # MiniLM similarity
def test_a_changed_setting_is_refused_on_the_same_directory(tmp_path: Path) -> None:
    _run(tmp_path)
    with pytest.raises(InputError, match="window differ"):
        _run(tmp_path, window=4)


@pytest.mark.model
def test_projection_per_turn_on_the_hf_backend(tmp_path: Path) -> None:
    """Each persona turn's projection is its reply read in the view its speaker had."""
    import numpy as np

    from personae.models import load_model
    from personae.models.whitebox import score_responses
    from personae.sim.agents import Turn, egocentric_view
    from personae.vectors.file import PersonaVector

    rng = np.random.default_rng(3)
    vec = PersonaVector.from_array(rng.normal(size=(30, 576)), trait="random", model="x",
                                   position="response_avg", method="mean_diff")
    path = tmp_path / "v.safetensors"
    vec.save(path)
    hf = load_model("hf:bundled")
    cfg = SimConfig(model="hf:bundled", judge=None, turns=4, max_tokens=8, window=2,
                    metrics=["projection", "leak"], vector=str(path), layer=9, progress="off")
    result = run_simulation(cfg, tmp_path / "run", use_cache=False, model=hf)
    (conv,) = result.summary["conversations"]
    from personae.sim.run import SimPlan

    (plan,) = SimPlan(cfg).plans
    turns = [Turn(conversation_id=plan.id, role=next(a.role for a in plan.agents
                                                     if a.id == t["speaker"]), **{
        k: t[k] for k in ("index", "turn", "speaker", "name", "text")}) for t in conv["turns"]]
    for i, t in enumerate(turns):
        got = conv["turns"][i]["metrics"].get("projection")
        if not t.text:
            assert got is None
            continue
        agent = next(a for a in plan.agents if a.id == t.speaker)
        (expected,) = score_responses(hf, vec, 9, [(egocentric_view(agent, turns[:i],
                                                                    window=2), t.text)])
        assert got == pytest.approx(expected.mean, abs=1e-3)
    group = {g["id"]: g for g in result.summary["groups"]}["chinedu-enugu-mechanic"]
    assert group["metrics"]["projection"]["first_past"] is None  # no threshold for it
    own = [t for t in turns if t.speaker == "chinedu-enugu-mechanic" and t.text]
    assert [p["turn"] for p in group["metrics"]["projection"]["curve"]] == [t.turn for t in own]


def test_console_summary_prints_every_metric_and_handles_no_threshold() -> None:
    import io

    from rich.console import Console

    from personae.report.simulate_console import print_sim_summary

    fixture = Path(__file__).parent.parent / "fixtures" / "report" / "simulate_summary.json"
    summary = json.loads(fixture.read_text())
    out = io.StringIO()
    print_sim_summary(summary, console=Console(file=out, width=200))
    text = out.getvalue()
    for m in summary["metrics"]:
        assert m["label"] in text
    assert "first out-of-persona turn" in text and "stopped by:" in text


def test_user_agents_have_their_own_ids_and_never_talk_with_themselves(tmp_path: Path) -> None:
    from personae.persona import load_personas, load_template
    from personae.sim.config import plan_conversations

    path = _personas(tmp_path)
    people = load_personas(path)
    cfg = SimConfig(personas=str(path), user_personas=str(path), judge=None,
                    goal="Ask {name} about {work}.")
    plans = plan_conversations(cfg, people, people, load_template("card"))
    assert [p.id for p in plans] == ["chinedu--user:rosa--0", "rosa--user:chinedu--0"]
    user, me = plans[0].agents
    assert (user.id, user.role, me.id) == ("user:rosa", "user", "chinedu")
    # The goal is the user's text: {name} is filled in, nothing else is touched.
    assert "Ask Chinedu about {work}." in user.system
    group = plan_conversations(cfg.model_copy(update={"group": True}), people, people,
                               load_template("card"))
    assert "Ask Rosa about {work}." in group[0].agents[0].system


def test_explicit_metrics_must_be_computable() -> None:
    from personae.sim.config import build_sim_config

    with pytest.raises(InputError, match="metric 'fidelity' needs a judge"):
        build_sim_config(judge="none", metrics=["fidelity"])
    with pytest.raises(InputError, match="'projection' needs --vector"):
        build_sim_config(metrics=["projection"])
    with pytest.raises(InputError, match="at least one metric"):
        build_sim_config(metrics=[])
    assert build_sim_config(judge="none").active_metrics() == ["similarity", "leak", "echo"]


def test_changed_user_script_contents_are_refused_on_resume(tmp_path: Path) -> None:
    script = tmp_path / "user.txt"
    script.write_text("Hello!\nWhat do you do?\n")
    model = ScriptedModel(["Fine, thanks.", "I fix cars."], name="a")
    cfg = SimConfig(user_script=str(script), judge=None, metrics=["leak"], progress="off")
    run_simulation(cfg, tmp_path / "run", model=model, use_cache=False)
    script.write_text("Bonjour !\nQue faites-vous ?\n")
    with pytest.raises(InputError, match="script_digest"):
        run_simulation(cfg, tmp_path / "run", model=model, use_cache=False)


@pytest.mark.local  # MiniLM similarity
def test_a_bundled_judge_is_named_in_the_warnings(tmp_path: Path) -> None:
    cfg = SimConfig(model="scripted:a", judge="bundled", metrics=["leak"], turns=2,
                    progress="off")
    result = run_simulation(cfg, tmp_path / "run", use_cache=False,
                            model=ScriptedModel(["Hi.", "Hello there, traveller."], name="a"))
    assert any("judge is the bundled" in w for w in result.summary["warnings"])


def test_a_judge_that_cannot_prefill_still_scores_from_probabilities(tmp_path: Path) -> None:
    """Like the openai backend: no prefilled answer, but logprobs; fidelity is then read
    without the prefill, not asked in words."""
    class NoPrefill(ScriptedModel):
        async def score_choices(self, messages: Sequence[Message], choices: Sequence[str], *,
                                prefill: str = "") -> ChoiceScores:
            if prefill:
                raise CapabilityError("cannot prefill")
            return await super().score_choices(messages, choices)

    judge = NoPrefill(["5"], name="np", choices={"4": 0.5, "5": 0.5, "neutral": 1.0})
    cfg = SimConfig(personas=str(_personas(tmp_path)), group=True, turns=4, progress="off",
                    model="scripted:agents", judge="scripted:np", metrics=["fidelity", "leak"])
    result = run_simulation(cfg, tmp_path / "run", use_cache=False, judge=judge,
                            model=ScriptedModel(agent_lines, name="agents"))
    from personae.runtime.store import RunStore

    records = [r for _, r in RunStore(result.run_dir).items("fidelity")]
    assert len(records) == 4 and {r["method"] for r in records} == {"logprobs"}
    assert all(r["value"] == 4.5 for r in records)
