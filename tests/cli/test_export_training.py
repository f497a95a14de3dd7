"""``personae export --format sft|dpo`` on eval runs written against loopback servers: a
subject whose second sample drops the persona, a judge that grades what it is shown. Rows
are in TRL's formats, filtered by the thresholds, and every id leads back to the records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from personae.cli.main import main
from personae.evals.engine import short_hash
from personae.evals.personagym import question_mean
from personae.runtime.store import RunStore
from personae.testing.loopback import LoopbackServer, grading_judge, in_character_reply
from tests.evals.test_training import assert_dpo_row, assert_sft_row

pytestmark = pytest.mark.server

FIXTURES = Path(__file__).parents[1] / "fixtures"
DRIFT = "As an AI"  # what the subject says when it drops the persona


def subject(request: dict) -> str:
    """In character on the first sample (seed 0) of a persona prompt, out of it otherwise."""
    return in_character_reply(request, degraded=request.get("seed") != 0)


def judge(request: dict) -> str:
    """Rubric 2 for an answer out of character, else 4; NLI contradiction for it, else
    entailment."""
    text = "\n".join(m["content"] for m in request["messages"])
    if "natural-language inference" in text:
        return "contradiction" if DRIFT in text else "entailment"
    return grading_judge(lambda t: 2 if DRIFT in t.rsplit("Response:", 1)[-1] else 4)(request)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_one_line(result: tuple[int, str, str], *needles: str) -> None:
    code, out, err = result
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, result
    assert err.startswith("personae: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.fixture(scope="module")
def servers() -> Any:
    with LoopbackServer(reply_fn=subject) as s, LoopbackServer(reply_fn=judge) as j:
        yield f"openai:subject@{s.base_url}", f"openai:judge@{j.base_url}"


def run_eval(capsys: pytest.CaptureFixture[str], servers: tuple[str, str], out: Path,
             *extra: str) -> None:
    model, judge_spec = servers
    code, _, err = cli(capsys, "eval", "--model", model, "--judge", judge_spec, "--per-task",
                       "1", "--tasks", "Expected Action,Linguistic Habits", "--suite",
                       "fidelity,consistency", "--reliability-sample", "0", "--no-cache",
                       "--out", str(out), *extra)
    assert code == 0, err


def traced(store: RunStore, meta: dict[str, Any], text: str, system: str,
           judges: list[str]) -> None:
    """The ids of a row lead to its response record, whose text is the row's, whose
    conditioning hash is the system message's, and whose judgements give its scores."""
    rec = store.get("response", meta["response_key"])
    assert rec is not None and rec["text"] == text
    assert rec["condition"] == meta["condition"] and rec["sample"] == meta["sample"]
    assert short_hash(system) == rec["conditioning_hash"]
    scores = [r["score"] for _, r in store.items("judgement") if r["variant"] == "main"
              and r["response_key"] == meta["response_key"] and r["judge"] in judges]
    assert question_mean(scores) == meta["fidelity"]
    assert any(r["response_key"] == meta["response_key"] for _, r in store.items("nli"))


def test_sft_and_dpo_rows_from_a_loopback_run(capsys: pytest.CaptureFixture[str],
                                              servers: tuple[str, str],
                                              tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_eval(capsys, servers, run, "--personas", "personagym", "--limit", "2", "--samples",
             "2")
    store = RunStore(run)
    judges = [servers[1]]

    # SFT: 2 personas x 2 probes x 2 samples; the second samples score 2 (< 4, the default).
    code, out, err = cli(capsys, "export", str(run), "--format", "sft")
    assert code == 0, err
    assert out.strip() == str((run / "export" / "sft.jsonl").resolve())
    assert err.strip() == "wrote 4 SFT rows (8 responses, 4 below the thresholds)"
    rows = read(run / "export" / "sft.jsonl")
    assert len(rows) == 4
    for row in rows:
        assert_sft_row(row)
        meta = row["metadata"]
        assert meta["sample"] == 0 and meta["fidelity"] >= 4 and meta["consistency"] > 0
        assert meta["run_dir"] == str(run.resolve())
        traced(store, meta, row["messages"][2]["content"],
               row["messages"][0]["content"], judges)
        probe = store.get("probe", meta["probe_id"])
        assert probe is not None and row["messages"][1]["content"] == probe["question"]

    every = tmp_path / "every.jsonl"
    code, out, err = cli(capsys, "export", str(run), "--format", "sft", "--min-fidelity", "0",
                         "--out", str(every))
    assert code == 0 and out.strip() == str(every.resolve()), err
    assert len(read(every)) == 8
    code, _, err = cli(capsys, "export", str(run), "--format", "sft", "--min-fidelity", "0",
                       "--min-consistency", "0", "--out", str(every))
    assert code == 0 and len(read(every)) == 4, err
    assert all(r["metadata"]["consistency"] >= 0 for r in read(every))

    # DPO from samples: per probe, the first sample (4) over the second (2).
    code, out, err = cli(capsys, "export", str(run), "--format", "dpo")
    assert code == 0, err
    assert out.strip() == str((run / "export" / "dpo.jsonl").resolve())
    assert err.strip() == "wrote 4 DPO pairs (4 probes)"
    pairs = read(run / "export" / "dpo.jsonl")
    assert len({p["metadata"]["probe_id"] for p in pairs}) == 4
    for pair in pairs:
        assert_dpo_row(pair)
        meta = pair["metadata"]
        assert pair["margin"] == 2.0
        assert (meta["chosen"]["sample"], meta["rejected"]["sample"]) == (0, 1)
        assert meta["run_dir"] == str(run.resolve())
        system = pair["prompt"][0]["content"]
        traced(store, meta["chosen"], pair["chosen"][0]["content"], system, judges)
        traced(store, meta["rejected"], pair["rejected"][0]["content"], system, judges)
        assert DRIFT in pair["rejected"][0]["content"]

    # DPO against the no-persona answer, under the persona's prompt.
    code, _, err = cli(capsys, "export", str(run), "--format", "dpo", "--rejected-from",
                       "control", "--out", str(tmp_path / "control.jsonl"))
    assert code == 0, err
    control = read(tmp_path / "control.jsonl")
    assert len(control) == 4
    for pair in control:
        assert_dpo_row(pair)
        rejected = pair["metadata"]["rejected"]
        assert rejected["condition"] == "no_persona"
        rec = store.get("response", rejected["response_key"])
        assert rec is not None and rec["text"] == pair["rejected"][0]["content"]
        assert pair["prompt"][0]["role"] == "system"

    code, _, err = cli(capsys, "export", str(run), "--format", "dpo", "--min-margin", "2",
                       "--out", str(tmp_path / "none.jsonl"))
    assert code == 0 and read(tmp_path / "none.jsonl") == [], err
    assert err.strip() == "wrote 0 DPO pairs (4 probes, 4 with a margin of 2 or less)"
    store.close()

    # Every record as files still works on the same run.
    code, out, err = cli(capsys, "export", str(run), "--format", "jsonl")
    assert code == 0 and str(run / "export" / "response.jsonl") in out.splitlines(), err
    assert_one_line(cli(capsys, "export", str(run), "--min-fidelity", "3"),
                    "--min-fidelity applies to --format sft or dpo")
    assert_one_line(cli(capsys, "export", str(run), "--format", "sft", "--rejected-from",
                        "control"), "--rejected-from applies to --format dpo")


def test_refusals_are_one_line(capsys: pytest.CaptureFixture[str], servers: tuple[str, str],
                               tmp_path: Path) -> None:
    team = tmp_path / "team.yaml"
    team.write_text("- id: ana\n  name: Ana Souza\n  summary: A night-shift nurse from "
                    "Lisbon.\n  facts: [I work night shifts.]\n")
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps({"Expected Action": ["At a wedding, what do you do?"],
                                     "Linguistic Habits": ["How do you greet a friend?"]}))
    run = tmp_path / "run"
    run_eval(capsys, servers, run, "--personas", str(team), "--questions", str(questions))

    assert_one_line(cli(capsys, "export", str(run), "--format", "dpo"),
                    "re-run the eval with --samples 2", "--rejected-from control")
    code, _, err = cli(capsys, "export", str(run), "--format", "dpo", "--rejected-from",
                       "control")
    assert code == 0 and err.strip() == "wrote 2 DPO pairs (2 probes)", err
    code, _, err = cli(capsys, "export", str(run), "--format", "sft", "--min-consistency",
                       "1", "--out", str(tmp_path / "x" / "sft.jsonl"))
    assert code == 0 and len(read(tmp_path / "x" / "sft.jsonl")) == 2, err  # C-score 1 each

    # The persona file changed since the run: its prompt is no longer what the subject saw.
    team.write_text(team.read_text().replace("night-shift nurse", "day-shift nurse"))
    assert_one_line(cli(capsys, "export", str(run), "--format", "sft"), "persona 'ana'",
                    "changed since the run")
    team.write_text("- id: bo\n  name: Bo\n  summary: A boat mechanic.\n")
    assert_one_line(cli(capsys, "export", str(run), "--format", "sft"), "persona 'ana'",
                    "not in")

    survey = Path(shutil.copytree(FIXTURES / "runs_v1" / "survey", tmp_path / "survey"))
    assert_one_line(cli(capsys, "export", str(survey), "--format", "sft"), "survey run",
                    "eval")
    assert_one_line(cli(capsys, "export", str(run), "--format", "csv"), "csv")
