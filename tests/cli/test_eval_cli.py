"""`personae eval`, `report`, `rescore` and `export` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from personae import load_bundled
from personae.judge.nli import persona_facts
from personae.testing.loopback import LoopbackServer
from tests.conftest import assert_one_line_error, default_sigint, run_cli

JUDGE = """
rules:
  - match: "Output Format"
    reply: "Score 1: Response - a\\n\\nScore 2: Response - b"
  - match: "Evaluation Form"
    reply: "It fits. Therefore, the final score is 4."
  - match: "Premise"
    reply: "neutral"
replies: ["C"]
"""
SUBJECT = "replies: ['I knit on Sundays. My grandchildren visit.']\n"


@pytest.fixture
def scripted(tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "judge.yaml").write_text(JUDGE)
    (tmp_path / "subject.yaml").write_text(SUBJECT)
    return f"scripted:{tmp_path / 'subject.yaml'}", f"scripted:{tmp_path / 'judge.yaml'}"


def small(model: str, judge: str, out: Path, *extra: str) -> list[str]:
    return ["eval", "--personas", "personagym", "--limit", "2", "--per-task", "1",
            "--tasks", "Toxicity,Expected Action", "--model", model, "--judge", judge,
            "--out", str(out), *extra]


def test_eval_report_rescore_export(scripted: tuple[str, str], tmp_path: Path) -> None:
    subject, judge = scripted
    run = tmp_path / "run"
    proc = run_cli(*small(subject, judge, run))
    assert proc.returncode == 0, proc.stderr
    assert "PersonaScore" in proc.stderr and proc.stdout.strip() == str(run / "report.html")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["fidelity"]["by_condition"]["persona"]["persona_score"]["value"] == 4.0
    assert summary["run"]["counts"]["responses"] == 2 * 2 * 3

    (run / "report.html").unlink()
    assert run_cli("report", str(run)).returncode == 0
    assert (run / "report.html").stat().st_size > 10_000

    strict = tmp_path / "strict.yaml"
    strict.write_text("replies: ['Therefore, the final score is 2.']\n")
    proc = run_cli("rescore", str(run), "--judge", f"scripted:{strict}")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["fidelity"]["by_condition"]["persona"]["persona_score"]["value"] == 2.0

    proc = run_cli("export", str(run), "--format", "parquet")
    assert proc.returncode == 0, proc.stderr
    assert any(line.endswith("judgement.parquet") for line in proc.stdout.splitlines())


@pytest.mark.parametrize(("args", "code", "needles"), [
    (["--suite", "fidelity,vibes"], 2, ["unknown suite 'vibes'"]),
    (["--preset", "huge"], 2, ["unknown preset 'huge'"]),
    (["--questions", "benchmark-v1", "--personas", "sample"], 2, ["benchmark-v1"]),
])
def test_bad_settings_are_one_line_errors(args: list[str], code: int, needles: list[str],
                                          scripted: tuple[str, str], tmp_path: Path) -> None:
    subject, judge = scripted
    cmd = small(subject, judge, tmp_path / "run")
    proc = run_cli(*cmd, *args)
    assert_one_line_error(proc, code, *needles)


def test_bad_files_are_one_line_errors(scripted: tuple[str, str], tmp_path: Path) -> None:
    subject, judge = scripted
    bad_personas = tmp_path / "team.yaml"
    bad_personas.write_text("- name: Ana\n  traits: {extraversion: 9}\n")
    proc = run_cli(*small(subject, judge, tmp_path / "a"), "--personas", str(bad_personas))
    assert_one_line_error(proc, 2, "team.yaml", "extraversion")

    questions = tmp_path / "questions.json"
    questions.write_text('{"Toxicity": "not a list"}')
    proc = run_cli(*small(subject, judge, tmp_path / "b"), "--questions", str(questions))
    assert_one_line_error(proc, 2, "questions.json", "{task: [question, ...]}")

    proc = run_cli("report", str(tmp_path))
    assert_one_line_error(proc, 2, "not a personae run directory")


def test_garbage_judge_counts_unparsable_and_still_reports(scripted: tuple[str, str],
                                                          tmp_path: Path) -> None:
    subject, _ = scripted
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("replies: ['%%%', 'lorem ipsum 77', '']\n")
    proc = run_cli(*small(subject, f"scripted:{garbage}", tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    counts = summary["run"]["counts"]
    assert counts["unparsable_judgements"] == counts["judgements"] > 0
    assert summary["fidelity"]["by_condition"]["persona"]["persona_score"]["value"] is None
    assert "could not be parsed" in proc.stderr


def _count(db: Path, kind: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return int(con.execute("SELECT COUNT(*) FROM records WHERE kind = ?",
                                   (kind,)).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _response_ids(db: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute("SELECT data FROM records WHERE kind = 'response'").fetchall()
    return {(json.loads(d)["question"], json.loads(d)["condition"]) for (d,) in rows}


def _request_id(body: dict) -> tuple[str, str] | None:
    """(question, condition) of a subject request; None for judge requests."""
    msgs = body["messages"]
    system = msgs[0]["content"] if msgs[0]["role"] == "system" else None
    if len(msgs) > 2 or (system and "judge" in system.lower()):
        return None
    condition = ("no_persona" if system is None else
                 "assistant" if system == "You are a helpful assistant." else "persona")
    return msgs[-1]["content"], condition


def test_sigkill_then_same_command_finishes_every_record_exactly_once(tmp_path: Path) -> None:
    run = tmp_path / "run"
    db = run / "run.sqlite3"
    personas = load_bundled("personagym")[:3]
    facts = sum(len(persona_facts(p)) for p in personas)  # NLI per response of a persona
    with LoopbackServer(delay_s=0.1, reply="Therefore, the final score is 4.") as server:
        model = f"openai:loop@{server.base_url}"
        args = ["-m", "personae", "eval", "--personas", "personagym", "--limit", "3",
                "--per-task", "1", "--suite", "fidelity,consistency", "--model", model,
                "--judge", model, "--reliability-sample", "2", "--concurrency", "2",
                "--no-cache", "--out", str(run)]
        proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={**os.environ})
        deadline = time.monotonic() + 120
        while _count(db, "response") < 12:
            assert proc.poll() is None, "finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        done_before = _response_ids(db)
        n_done = _count(db, "response")
        assert 12 <= n_done < 45
        first_run_requests = len(server.bodies)
        server.bodies.clear()

        again = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                               timeout=300)
        assert again.returncode == 0, again.stderr
        # Requests of the second run, without the one-token logprob probes that find out
        # that this server gives no logprobs (closed-set judgements then fall back to text).
        chats = [b for b in server.bodies if not b.get("logprobs")]
    # No request for a response that was stored before the kill...
    asked = {_request_id(b) for b in chats} - {None}
    assert not asked & done_before
    # ...and every record exactly once: 15 probes × 3 conditions, one grading each, etc.
    calls = {"response": 45, "examples": 15, "judgement": 45 + 2 * 3, "role": 2,
             "nli": facts * 5 * 3}
    for kind, n in calls.items():
        assert _count(db, kind) == n, kind
    assert len(chats) == sum(calls.values()) - n_done
    assert first_run_requests >= n_done
    summary = json.loads((run / "summary.json").read_text())
    assert summary["run"]["counts"]["responses"] == 45


def test_ctrl_c_exits_130_with_completed_records_kept(tmp_path: Path) -> None:
    run = tmp_path / "run"
    db = run / "run.sqlite3"
    with LoopbackServer(delay_s=0.2, reply="Therefore, the final score is 4.") as server:
        model = f"openai:loop@{server.base_url}"
        args = ["eval", "--personas", "personagym", "--limit", "3", "--per-task", "1",
                "--model", model, "--judge", model, "--concurrency", "2", "--out", str(run)]
        # The default SIGINT handler, explicitly: a suite started as a background job
        # ignores SIGINT, and children inherit that.
        proc = subprocess.Popen([sys.executable, "-m", "personae", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=default_sigint)
        deadline = time.monotonic() + 60
        while _count(db, "response") < 4:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert err.strip().splitlines()[-1] == ("personae: interrupted; re-run the same "
                                                "command to resume")
        assert "Traceback" not in err
        n_done = _count(db, "response")
        assert n_done >= 4
        server.delay_s = 0.0
        again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert f"responses: resuming: {n_done} of 45 done" in again.stderr, again.stderr
    assert _count(db, "response") == 45
