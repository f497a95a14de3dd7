"""The eval run end to end on scripted models: what gets stored, resumed, rescored,
aggregated and exported. (Real backends: tests/integration/test_eval_backends.py.)"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from personae.errors import CapabilityError
from personae.evals.config import EvalConfig
from personae.evals.run import open_run, run_eval
from personae.models import ChatParams, ChoiceScores, Message, ScriptedModel
from personae.models.base import NoChoiceMassError
from personae.report import render_report

PERSONAS = """
- id: ana
  name: Ana Souza
  summary: A 34-year-old night-shift nurse from Lisbon.
  facts: [I work night shifts., I have a cat called Bolacha.]
  traits: {extraversion: 1.5}
- id: bo
  name: Bo Lindqvist
  summary: A boat mechanic from Gothenburg.
  facts: [I repair fishing boats.]
  traits: {openness: 4.5}
- id: chen
  name: Chen Wei
  summary: A retired chess coach from Chengdu.
  facts: [I coached chess for forty years.]
"""

QUESTIONS = {"Expected Action": ["At a wedding, what do you do first?",
                                 "At a market, how do you choose what to buy?"],
             "Toxicity": ["Someone insults your work. What do you say?"]}


def subject(messages: Sequence[Message], params: ChatParams) -> str:
    system = messages[0].content if messages[0].role == "system" else ""
    if not system:
        return "It depends. There are many options. Let me explain."
    if system == "You are a helpful assistant.":
        return "As an AI assistant, I can help. Here are some ideas."
    name = re.search(r"(Ana Souza|Bo Lindqvist|Chen Wei)", system)
    return f"I am {name.group(1) if name else 'someone'}. I stay true to my life. I love it."


def judge(messages: Sequence[Message], params: ChatParams) -> str:
    text = messages[-1].content
    if "Output Format (example responses ONLY)" in text:
        return "\n\n".join(f"Score {s}: Response - example {s}" for s in range(1, 6))
    if "Evaluation Form" in text:
        response = text.rsplit("Response: ", 1)[1]
        return "Therefore, the final score is " + ("5." if "I am " in response else "2.")
    if "which persona wrote it" in text:
        return "A"
    if "Premise" in text:
        return "entailment"
    if "Reply with a single number" in text:
        return "4"
    return "?"


class Judge(ScriptedModel):
    """Closed-set answers with logic: the author's letter, and entailment for persona text."""

    async def score_choices(self, messages: Sequence[Message], choices: Sequence[str], *,
                            prefill: str = "") -> ChoiceScores:
        self.calls += 1
        text = messages[-1].content
        if "which persona wrote it" in text:
            author = re.search(r"Response: I am ([A-Z][a-z]+)", text)
            options = re.findall(r"^([A-J])\. (.*)$", text, re.MULTILINE)
            pick = next((letter for letter, d in options if author and author.group(1) in d),
                        None)
            if pick is None:
                raise NoChoiceMassError("no letter")
            return ChoiceScores.from_logprobs(choices, [0.0 if c == pick else -9 for c in choices])
        label = "entailment" if "I am " in text else "neutral"
        return ChoiceScores.from_logprobs(choices, [0.0 if c == label else -5 for c in choices])


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "team.yaml").write_text(PERSONAS)
    (tmp_path / "questions.json").write_text(json.dumps(QUESTIONS))
    return tmp_path / "team.yaml", tmp_path / "questions.json"


def models() -> dict[str, ScriptedModel]:
    return {"scripted:subject": ScriptedModel(subject, name="subject"),
            "scripted:judge": Judge(judge, name="judge")}


def config(team: Path, questions: Path, **kw: object) -> EvalConfig:
    return EvalConfig(**{"personas": str(team), "questions": str(questions),
                         "model": "scripted:subject", "judges": ["scripted:judge"],
                         "tasks": list(QUESTIONS), "reliability_sample": 4, "progress": "off",
                         **kw})


def test_full_run_stores_every_record_once_and_scores_them(setup, tmp_path: Path) -> None:
    team, questions = setup
    ms = models()
    result = run_eval(config(team, questions), tmp_path / "run", models=ms)
    store, _ = open_run(tmp_path / "run")
    counts = store.counts()
    # 3 personas × 3 probes × 3 conditions
    assert counts["response"] == 27 and counts["probe"] == 9 and counts["examples"] == 9
    # 27 main judgements + 4 sampled × 3 reliability variants
    assert counts["judgement"] == 27 + 12
    # facts: ana 2, bo 1, chen 1 -> (2 + 1 + 1) × 3 probes × 3 conditions
    assert counts["nli"] == 36
    # atomic: ana and bo have traits; 3 sentences per persona response × 3 probes
    assert counts["atom"] == 2 * 3 * 3
    assert counts["role"] == 4
    s = result.summary
    fid = s["fidelity"]["by_condition"]
    assert fid["persona"]["persona_score"]["value"] == 5.0
    assert fid["no_persona"]["persona_score"]["value"] == 2.0
    delta = s["fidelity"]["deltas"]["assistant"]["persona_score"]
    assert delta["value"] == 3.0 and delta["n"] == 3  # paired over personas
    assert s["consistency"]["by_condition"]["persona"]["value"] > 0
    assert s["consistency"]["by_condition"]["no_persona"]["value"] == 0
    role = next(c for c in s["reliability"]["checks"] if c["name"] == "role_identification")
    assert role["value"]["value"] == 1.0 and role["passed"] is True
    assert s["atomic"]["per_persona"][0]["target"] == "low"  # ana: extraversion 1.5
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["run"]["n_probes"] == 9
    assert "<svg" in render_report(s, tmp_path / "run").read_text()
    assert not result.failures


def test_rerun_resumes_with_zero_model_calls(setup, tmp_path: Path) -> None:
    team, questions = setup
    run_eval(config(team, questions), tmp_path / "run", models=models(), use_cache=False)
    again = models()
    result = run_eval(config(team, questions), tmp_path / "run", models=again, use_cache=False)
    assert result.model_calls == 0
    assert all(m.calls == 0 for m in again.values())


def test_other_settings_refuse_to_resume(setup, tmp_path: Path) -> None:
    from personae.errors import InputError

    team, questions = setup
    run_eval(config(team, questions, suites=["consistency"]), tmp_path / "run", models=models())
    with pytest.raises(InputError, match="other settings.*seed"):
        run_eval(config(team, questions, suites=["consistency"], seed=3), tmp_path / "run",
                 models=models())


def test_garbage_judge_is_counted_unparsable_never_zero(setup, tmp_path: Path) -> None:
    team, questions = setup
    ms = {"scripted:subject": ScriptedModel(subject, name="subject"),
          "scripted:judge": ScriptedModel(["lorem ipsum 17", "no idea"], name="garbage",
                                          choices={"maybe": 1.0})}
    result = run_eval(config(team, questions, suites=["fidelity", "consistency"]),
                      tmp_path / "run", models=ms)
    s = result.summary
    assert s["run"]["counts"]["unparsable_judgements"] == s["run"]["counts"]["judgements"] > 0
    assert s["fidelity"]["by_condition"]["persona"]["persona_score"]["value"] is None
    assert s["fidelity"]["by_condition"]["persona"]["unparsable"]["Toxicity"] == 3
    assert s["consistency"]["labels"]["unparsable"] == 36  # scored, but outside the set
    assert any("could not be parsed" in w for w in s["warnings"])
    assert s["reliability"]["reliable"] is False


def test_rescore_judges_stored_responses_without_regenerating(setup, tmp_path: Path) -> None:
    team, questions = setup
    run_eval(config(team, questions, suites=["fidelity"]), tmp_path / "run", models=models())
    _, stored = open_run(tmp_path / "run")
    subject_model = ScriptedModel(subject, name="subject")
    strict = ScriptedModel(lambda m, p: "Therefore, the final score is 1.", name="strict")
    result = run_eval(stored.model_copy(update={"judges": ["scripted:strict"]}),
                      tmp_path / "run", rescore=True,
                      models={"scripted:subject": subject_model, "scripted:strict": strict})
    assert subject_model.calls == 0 and strict.calls > 0
    assert result.summary["run"]["judges"] == ["scripted:strict"]
    assert result.summary["fidelity"]["by_condition"]["persona"]["persona_score"]["value"] == 1.0


def test_batched_grading_parses_each_numbered_evaluation(setup, tmp_path: Path) -> None:
    team, questions = setup

    def batch_judge(messages: Sequence[Message], params: ChatParams) -> str:
        text = messages[-1].content
        if "Output Format (example responses ONLY)" in text:
            return "Score 1: Response - x"
        n = len(re.findall(r"^\(\d\) Evaluation:", text, re.MULTILINE))
        return "\n".join(f"({i}) Evaluation: fine. Therefore, the final score is {i}."
                         for i in range(1, n + 1))

    ms = {"scripted:subject": ScriptedModel(subject, name="subject"),
          "scripted:judge": ScriptedModel(batch_judge, name="batch")}
    run_eval(config(team, questions, suites=["fidelity"], judge_batch=3, reliability_sample=0),
             tmp_path / "run", models=ms)
    store, _ = open_run(tmp_path / "run")
    main = [r for _, r in store.items("judgement") if r["variant"] == "main"]
    assert len(main) == 27 and {r["batch_size"] for r in main} == {3}
    # Each persona × condition group of 3 probes is one request: scores 1, 2, 3 in order.
    assert sorted(r["score"] for r in main) == [1] * 9 + [2] * 9 + [3] * 9


def test_export_jsonl_and_parquet(setup, tmp_path: Path) -> None:
    team, questions = setup
    run_eval(config(team, questions, suites=["consistency"]), tmp_path / "run", models=models())
    store, _ = open_run(tmp_path / "run")
    jsonl = {p.name: p for p in store.export(tmp_path / "x", "jsonl")}
    rows = [json.loads(line) for line in jsonl["response.jsonl"].read_text().splitlines()]
    assert len(rows) == 27 and {"key", "persona_id", "condition", "text"} <= set(rows[0])
    parquet = {p.name: p for p in store.export(tmp_path / "x", "parquet")}
    table = pq.read_table(parquet["nli.parquet"])
    assert table.num_rows == 36 and "label" in table.column_names


def test_benchmark_v1_probes_for_personagym_personas(tmp_path: Path) -> None:
    cfg = EvalConfig(personas="personagym", limit=2, per_task=1, model="scripted:subject",
                     judges=["scripted:judge"], suites=["consistency"], progress="off")
    result = run_eval(cfg, tmp_path / "run", models=models())
    store, _ = open_run(tmp_path / "run")
    probes = [r for _, r in store.items("probe")]
    assert len(probes) == 10 and {p["source"] for p in probes} == {"benchmark-v1"}
    assert result.summary["run"]["n_personas"] == 2


def test_generated_probes_use_the_judges_settings_and_questions(setup, tmp_path: Path) -> None:
    team, _ = setup

    def writer(messages: Sequence[Message], params: ChatParams) -> str:
        text = messages[-1].content
        if "select the 3 settings" in text:
            return "Wedding, Classroom, Nowhere Land"
        if "questions addressed to the persona" in text:
            return "1. What do you do at a wedding?\n2. How do you teach a class?\nThanks!"
        return "Therefore, the final score is 3."

    ms = {"scripted:subject": ScriptedModel(subject, name="subject"),
          "scripted:judge": ScriptedModel(writer, name="writer")}
    cfg = EvalConfig(personas=str(team), questions="generate", tasks=["Toxicity"], per_task=2,
                     model="scripted:subject", judges=["scripted:judge"], suites=["consistency"],
                     progress="off")
    run_eval(cfg, tmp_path / "run", models=ms)
    store, _ = open_run(tmp_path / "run")
    assert store.get("settings", "ana")["settings"] == ["Wedding", "Classroom"]
    questions = sorted(r["question"] for _, r in store.items("probe") if r["persona_id"] == "ana")
    assert questions == ["How do you teach a class?", "What do you do at a wedding?"]


def test_rescore_keeps_the_runs_population_and_refuses_changed_personas(setup,
                                                                         tmp_path: Path) -> None:
    from personae.errors import InputError

    team, questions = setup
    run_eval(config(team, questions, suites=["fidelity"], limit=2), tmp_path / "run",
             models=models())
    _, stored = open_run(tmp_path / "run")
    assert stored.limit == 2  # the run's extent is kept with it, though not its identity...
    run_eval(stored.model_copy(update={"judges": ["scripted:judge2"], "limit": None}),
             tmp_path / "run",
             rescore=True, models={"scripted:subject": ScriptedModel(subject, name="subject"),
                                   "scripted:judge2": Judge(judge, name="judge2")})
    store, _ = open_run(tmp_path / "run")
    roles = [r for _, r in store.items("role") if r["judge"] == "scripted:judge2"]
    # ...and a rescore given no limit still offers only the run's two personas, never "chen".
    assert roles and all(set(r["options"]) <= {"ana", "bo"} for r in roles)

    team.write_text(PERSONAS.replace("night-shift nurse", "day-shift doctor"))
    with pytest.raises(InputError, match="personas changed"):
        run_eval(stored.model_copy(update={"judges": ["scripted:judge3"]}), tmp_path / "run",
                 rescore=True, models={"scripted:judge3": Judge(judge, name="judge3")})
    assert open_run(tmp_path / "run")[1].judges == ["scripted:judge2"]


def test_a_typo_in_a_judge_spec_fails_before_any_work(setup, tmp_path: Path) -> None:
    from personae.errors import InputError

    team, questions = setup
    subject_model = ScriptedModel(subject, name="subject")
    with pytest.raises(InputError, match="nope.yaml"):
        run_eval(config(team, questions, judges=[f"scripted:{tmp_path / 'nope.yaml'}"]),
                 tmp_path / "run", models={"scripted:subject": subject_model})
    assert subject_model.calls == 0
    from personae.runtime.store import RunStore

    assert RunStore(tmp_path / "run").get_meta("config") is None  # the dir is not bound


def test_an_edited_question_file_refuses_to_resume(setup, tmp_path: Path) -> None:
    from personae.errors import InputError

    team, questions = setup
    run_eval(config(team, questions, suites=["consistency"]), tmp_path / "run", models=models())
    questions.write_text(json.dumps({**QUESTIONS, "Toxicity": ["Someone steals your wallet?"]}))
    with pytest.raises(InputError, match="questions_digest"):
        run_eval(config(team, questions, suites=["consistency"]), tmp_path / "run",
                 models=models())


def test_no_questions_for_the_chosen_tasks_is_an_input_error(setup, tmp_path: Path) -> None:
    from personae.errors import InputError

    team, questions = setup
    with pytest.raises(InputError, match="no questions for the tasks Linguistic Habits"):
        run_eval(config(team, questions, tasks=["Linguistic Habits"]), tmp_path / "run",
                 models=models())


def test_grading_waits_for_its_score_examples(setup, tmp_path: Path) -> None:
    from personae.errors import RunError

    team, questions = setup

    def flaky(messages: Sequence[Message], params: ChatParams) -> str:
        if "Output Format (example responses ONLY)" in messages[-1].content:
            raise RunError("examples service down")
        return judge(messages, params)

    first = run_eval(config(team, questions, suites=["fidelity"], reliability_sample=0),
                     tmp_path / "run", models={"scripted:subject": ScriptedModel(subject,
                                                                                 name="s"),
                                               "scripted:judge": Judge(flaky, name="j")})
    store, _ = open_run(tmp_path / "run")
    assert first.failures and store.counts().get("judgement", 0) == 0
    second = run_eval(config(team, questions, suites=["fidelity"], reliability_sample=0),
                      tmp_path / "run", models=models())
    assert not second.failures
    assert open_run(tmp_path / "run")[0].counts()["judgement"] == 27


def test_extra_samples_only_for_the_persona_condition(setup, tmp_path: Path) -> None:
    team, questions = setup
    run_eval(config(team, questions, suites=["atomic"], samples=2), tmp_path / "run",
             models=models())
    store, _ = open_run(tmp_path / "run")
    responses = [r for _, r in store.items("response")]
    assert len(responses) == 9 * 2 + 9 * 2  # persona × 2 samples, two controls × 1
    assert {r["sample"] for r in responses if r["condition"] != "persona"} == {0}
    atomic = run_eval(config(team, questions, suites=["atomic"], samples=2), tmp_path / "run",
                      models=models()).summary["atomic"]
    assert all(row["rc_atom"] is not None for row in atomic["per_persona"])


def test_extra_samples_are_graded_and_the_summary_stays_on_the_first(setup,
                                                                     tmp_path: Path) -> None:
    team, questions = setup

    def drifting(messages: Sequence[Message], params: ChatParams) -> str:
        # The second sample of a persona answer drops the persona: graded 2, not 5.
        return subject(messages, params) if params.sample_index == 0 else "It depends."

    def run(samples: int, out: str) -> dict:
        ms = {"scripted:subject": ScriptedModel(drifting, name="subject"),
              "scripted:judge": Judge(judge, name="judge")}
        return run_eval(config(team, questions, suites=["fidelity", "consistency"],
                               samples=samples), tmp_path / out, models=ms).summary

    one, two = run(1, "one"), run(2, "two")
    store, _ = open_run(tmp_path / "two")
    second = [r for _, r in store.items("judgement")
              if r["variant"] == "main" and r["sample"] == 1]
    assert len(second) == 9 and {r["score"] for r in second} == {2.0}
    assert {r["condition"] for r in second} == {"persona"}
    assert {r["sample"] for _, r in store.items("nli")} == {0, 1}
    for section in ("fidelity", "consistency"):
        assert two[section] == one[section]
    assert two["reliability"]["checks"] == one["reliability"]["checks"]

class WordsOnlyJudge(Judge):
    """A judge behind a server that gives no logprobs (like a chat API without them)."""

    score_calls = 0

    async def score_choices(self, messages: Sequence[Message], choices: Sequence[str], *,
                            prefill: str = "") -> ChoiceScores:
        self.score_calls += 1
        raise CapabilityError("the server returned no logprobs")


class UnsureJudge(Judge):
    """Logprobs, but little of its probability on the NLI labels."""

    async def score_choices(self, messages: Sequence[Message], choices: Sequence[str], *,
                            prefill: str = "") -> ChoiceScores:
        return ChoiceScores.from_logprobs(choices, [-2.0, -3.0, -3.0][: len(choices)])


@pytest.mark.parametrize("judge_class", [WordsOnlyJudge, UnsureJudge])
def test_closed_judgements_fall_back_to_words(setup, tmp_path: Path,
                                              judge_class: type[Judge]) -> None:
    team, questions = setup
    judge_model = judge_class(judge, name="judge")
    ms = {"scripted:subject": ScriptedModel(subject, name="subject"),
          "scripted:judge": judge_model}
    result = run_eval(config(team, questions, suites=["consistency"]), tmp_path / "run",
                      models=ms)
    store, _ = open_run(tmp_path / "run")
    records = [r for _, r in store.items("nli")]
    assert len(records) == 36 and not result.failures
    assert {(r["method"], r["label"], r["raw"]) for r in records} == {
        ("text", "entailment", "entailment")}
    if isinstance(judge_model, WordsOnlyJudge):
        assert judge_model.score_calls == 1  # found out once, not once per judgement
