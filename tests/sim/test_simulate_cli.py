"""``personae simulate`` as a user runs it: SIGKILL in the middle of a batch and the same
command again, against a real OpenAI-compatible server on loopback; bad input."""

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

from personae.testing.loopback import LoopbackServer
from tests.conftest import assert_one_line_error, run_cli


def _turns(db: Path) -> list[dict]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            rows = con.execute("SELECT data FROM records WHERE kind = 'turn'").fetchall()
    except sqlite3.OperationalError:
        return []
    return [json.loads(d) for (d,) in rows]


def _transcripts(run: Path) -> dict[str, list[tuple]]:
    rows = [json.loads(line) for line in (run / "transcripts.jsonl").read_text().splitlines()]
    return {r["conversation_id"]: [(t["index"], t["turn"], t["speaker"], t["text"])
                                   for t in r["turns"]] for r in rows}


@pytest.mark.server
def test_sigkill_mid_batch_then_same_command_completes_every_conversation(
        tmp_path: Path) -> None:
    with LoopbackServer(delay_s=0.05, varied=True, keep_bodies=False) as server:
        def args(out: Path) -> list[str]:
            return ["-m", "personae", "simulate", "--personas", "sample", "--limit", "4",
                    "--conversations", "2", "--turns", "10", "--judge", "none",
                    "--metrics", "leak", "--concurrency", "4", "--no-cache",
                    "--model", f"openai:loop@{server.base_url}", "--out", str(out)]

        run = tmp_path / "run"
        proc = subprocess.Popen([sys.executable, *args(run)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={**os.environ})
        deadline = time.monotonic() + 120
        while len(_turns(run / "run.sqlite3")) < 25:
            assert proc.poll() is None, "finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at = _turns(run / "run.sqlite3")
        assert 25 <= len(killed_at) < 80
        requests_before = server.requests

        again = subprocess.run([sys.executable, *args(run)], capture_output=True, text=True,
                               timeout=300)
        assert again.returncode == 0, again.stderr
        resumed_requests = server.requests - requests_before

        # The same command, never interrupted, as the reference.
        ref = tmp_path / "ref"
        clean = subprocess.run([sys.executable, *args(ref)], capture_output=True, text=True,
                               timeout=300)
        assert clean.returncode == 0, clean.stderr

    resumed, reference = _transcripts(run), _transcripts(ref)
    assert len(resumed) == 8
    for cid, turns in resumed.items():
        assert [t[0] for t in turns] == list(range(10)), cid  # no turn missing or twice
    assert resumed == reference  # and the very turns an uninterrupted run takes
    # Only the missing turns were asked for (at most the in-flight ones again).
    assert 80 - len(killed_at) <= resumed_requests <= 80 - len(killed_at) + 4
    summary = json.loads((run / "summary.json").read_text())
    assert summary["run"]["counts"] == {"conversations": 8, "finished": 8, "turns": 80,
                                        "failed_calls": 0}


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    script = tmp_path / "user.yaml"
    script.write_text("turns: [1, 2]\n")
    cases = [
        (["--policy", "loudest"], "policy: Input should be 'round-robin' or 'judge'"),
        (["--personas", str(tmp_path / "missing.yaml")], "missing.yaml"),
        (["--user-script", str(script)], "expected a list of user lines"),
        (["--metrics", "fidelity,vibes"], "unknown metric 'vibes'"),
        (["--vector", str(script)], "--vector needs --layer"),
        (["--group", "--limit", "1", "--personas", "sample"], "2 or more personas"),
        (["--model", "nosuch:thing"], "nosuch"),
    ]
    for extra, needle in cases:
        proc = run_cli("simulate", "--judge", "none", "--out", str(tmp_path / "r"), *extra)
        assert_one_line_error(proc, 2, needle)
    assert not (tmp_path / "r").exists()  # nothing was started for bad input


def test_user_script_drives_the_user_turns(tmp_path: Path) -> None:
    script = tmp_path / "user.txt"
    script.write_text("Hello there!\n\nWhat do you do for a living?\n")
    model = tmp_path / "agent.yaml"
    model.write_text("rules: [{match: living, reply: 'I repair cars in Enugu.'}]\n"
                     "replies: ['Welcome, come by the workshop any time.']\n")
    proc = run_cli("simulate", "--user-script", str(script), "--model", f"scripted:{model}",
                   "--judge", "none", "--metrics", "leak", "--turns", "10",
                   "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    (turns,) = _transcripts(tmp_path / "run").values()
    assert [t[3] for t in turns] == ["Hello there!", "Welcome, come by the workshop any time.",
                                     "What do you do for a living?", "I repair cars in Enugu."]
    assert proc.stdout.strip().endswith("report.html")
    assert "script_end 1" in proc.stderr


@pytest.mark.model
def test_two_agents_eight_turns_on_the_bundled_model(tmp_path: Path) -> None:
    """The issue's first check: transcript, per-turn metrics and the drift plot, with the
    bundled model as both speakers and judge (short turns, one fact, to keep it quick)."""
    run = tmp_path / "run"
    proc = run_cli("simulate", "--turns", "8", "--max-tokens", "40", "--max-facts", "1",
                   "--out", str(run), timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "bundled SmolLM2-135M" in proc.stderr  # says the curves are not a measurement
    (turns,) = _transcripts(run).values()
    summary = json.loads((run / "summary.json").read_text())
    (conv,) = summary["conversations"]
    assert [t[0] for t in turns] == list(range(len(turns)))
    assert [t[2] for t in turns[:2]] == ["user:sam", "chinedu-enugu-mechanic"]
    assert conv["stop_reason"] in ("max_turns", "end_signal", "repetition")
    assert len(turns) == 8 or conv["stop_reason"] != "max_turns"
    scored = [t for t in conv["turns"] if t["text"]]
    assert scored and all(set(t["metrics"]) == {"fidelity", "consistency", "similarity",
                                                "leak", "echo"} for t in scored)
    assert all(t["metrics"]["similarity"] is not None for t in scored)
    groups = {g["id"]: g for g in summary["groups"]}
    assert set(groups) == {"user:sam", "chinedu-enugu-mechanic"}
    curve = groups["chinedu-enugu-mechanic"]["metrics"]["fidelity"]["curve"]
    assert [p["turn"] for p in curve] == list(range(1, len(curve) + 1))
    html = (run / "report.html").read_text()
    assert html.count("<svg") >= 2 and "Chinedu" in html
    again = run_cli("simulate", "--turns", "8", "--max-tokens", "40", "--max-facts", "1",
                    "--out", str(run))
    assert again.returncode == 0 and "0 model calls" in again.stderr


def test_export_and_report_on_a_simulate_run(tmp_path: Path) -> None:
    model = tmp_path / "agent.yaml"
    model.write_text("replies: ['I repair cars.', 'Come by the workshop.', 'Bring the car "
                     "on Monday morning.', 'My apprentices will wash it.']\n")
    run = tmp_path / "run"
    args = ["simulate", "--model", f"scripted:{model}", "--judge", "none", "--metrics",
            "leak", "--turns", "4", "--out", str(run)]
    assert run_cli(*args).returncode == 0
    proc = run_cli("export", str(run))
    assert proc.returncode == 0, proc.stderr
    turns = [json.loads(x) for x in (run / "export" / "turn.jsonl").read_text().splitlines()]
    assert sorted(t["index"] for t in turns) == [0, 1, 2, 3]
    # `personae report` rewrites a simulate run's outputs from its records, as for any kind.
    first = json.loads((run / "summary.json").read_text())
    (run / "report.html").unlink()
    (run / "transcripts.jsonl").unlink()
    proc = run_cli("report", str(run))
    assert proc.returncode == 0, proc.stderr
    again = json.loads((run / "summary.json").read_text())
    assert again["kind"] == "simulate" and again["groups"] == first["groups"]
    assert (run / "report.html").is_file() and (run / "transcripts.jsonl").is_file()
