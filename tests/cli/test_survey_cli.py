"""`personae survey` as a user runs it: output streams, one-line errors, resume after kill,
and a real run on the bundled model."""

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
import yaml

from personae.instruments import load_questionnaire
from personae.testing.loopback import LoopbackServer
from tests.conftest import assert_one_line_error, run_cli

SCRIPT = 'choices: {"1": 0.1, "2": 0.1, "3": 0.2, "4": 0.4, "5": 0.2}\nreplies: ["4"]\n'


@pytest.fixture
def scripted(tmp_path: Path) -> str:
    (tmp_path / "m.yaml").write_text(SCRIPT)
    return f"scripted:{tmp_path / 'm.yaml'}"


def test_survey_writes_report_path_to_stdout_and_tables_to_stderr(scripted: str,
                                                                  tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["survey", "--model", scripted, "--items", "30", "--variants", "base,reversed",
            "--personas", "sample", "--limit", "2", "--out", str(run)]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(run / "report.html")
    assert "Domain means" in proc.stderr and "120 model calls" in proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["run"]["counts"]["answers"] == 2 * 2 * 30
    assert summary["reliability"]["domains"]["E"]["n_rows"] == 4
    assert "bundled" not in " ".join(summary["warnings"])
    html = (run / "report.html").read_text()
    assert "Variant spread" in html and "Chinedu" in html
    again = run_cli(*args)
    assert again.returncode == 0 and "0 model calls" in again.stderr


def test_bad_settings_fail_before_the_bundled_model_loads(tmp_path: Path) -> None:
    # Bad settings are found before the model is loaded: the warning is not printed then.
    proc = run_cli("survey", "--model", "bundled", "--mode", "nope", "--out",
                   str(tmp_path / "r"))
    assert_one_line_error(proc, 2, "mode")


def _mini(tmp_path: Path, **change: object) -> Path:
    data = {"name": "mini", "response_scale": [{"value": v, "label": f"L{v}"}
                                               for v in range(1, 6)],
            "scales": [{"id": "E", "name": "Extraversion"}],
            "items": [{"id": "e1", "text": "Talk a lot.", "scale": "E"},
                      {"id": "e2", "text": "Keep quiet.", "scale": "E", "reversed": True}]}
    data.update(change)
    path = tmp_path / "q.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_user_questionnaire_runs(scripted: str, tmp_path: Path) -> None:
    proc = run_cli("survey", "--model", scripted, "--instrument", str(_mini(tmp_path)),
                   "--mode", "generate", "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["scores"][0]["domains"]["E"]["value"] == 3.0  # 4 and 6 - 4


@pytest.mark.parametrize(("content", "needles"), [
    ("name: [unclosed\nitems: {", ["q.yaml", "invalid YAML at line"]),
    ({"items": [{"id": "e1", "text": "Talk a lot.", "scale": "Q"}]},
     ["q.yaml", "item 'e1' refers to unknown scale 'Q'"]),
    ({"items": [{"id": "e1", "scale": "E"}]}, ["q.yaml", "items.0.text: Field required"]),
    ({"prompts": [{"id": "p", "template": "no slot here"}]}, ["q.yaml", "{item}"]),
])
def test_malformed_questionnaire_is_one_line_exit_2(scripted: str, tmp_path: Path,
                                                    content: object, needles: list[str]) -> None:
    if isinstance(content, str):
        path = tmp_path / "q.yaml"
        path.write_text(content)
    else:
        path = _mini(tmp_path, **content)
    out = tmp_path / "run"
    proc = run_cli("survey", "--model", scripted, "--instrument", str(path), "--out", str(out))
    assert_one_line_error(proc, 2, *needles)
    assert not out.exists()


@pytest.mark.parametrize(("args", "needles"), [
    (["--variants", "base,sideways"], ["unknown variant 'sideways'"]),
    (["--mode", "guess"], ["mode"]),
    (["--instrument", "ipip-999"], ["no such questionnaire file", "ipip-120"]),
    (["--items", "0"], ["items"]),
    (["--personas", "nosuchfile.yaml"], ["nosuchfile.yaml"]),
])
def test_bad_settings_are_one_line_errors(scripted: str, tmp_path: Path, args: list[str],
                                          needles: list[str]) -> None:
    proc = run_cli("survey", "--model", scripted, *args, "--out", str(tmp_path / "run"))
    assert_one_line_error(proc, 2, *needles)


def test_shape_and_paraphrase_need_what_the_questionnaire_lacks(scripted: str,
                                                                 tmp_path: Path) -> None:
    q = str(_mini(tmp_path))
    proc = run_cli("survey", "--model", scripted, "--instrument", q, "--shape")
    assert_one_line_error(proc, 2, "trait shaping needs the Big Five")
    proc = run_cli("survey", "--model", scripted, "--instrument", q, "--variants",
                   "paraphrase")
    assert_one_line_error(proc, 2, "paraphrase variant needs two or more")


def test_resuming_with_other_settings_is_refused(scripted: str, tmp_path: Path) -> None:
    out = str(tmp_path / "run")
    assert run_cli("survey", "--model", scripted, "--items", "3", "--out", out).returncode == 0
    proc = run_cli("survey", "--model", scripted, "--items", "3", "--mode", "generate",
                   "--out", out)
    assert_one_line_error(proc, 2, "other settings", "mode")


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return int(con.execute("SELECT COUNT(*) FROM records WHERE kind = 'answer'")
                       .fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _answered(db: Path) -> set[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute("SELECT data FROM records WHERE kind = 'answer'").fetchall()
    return {json.loads(d)["item_id"] for (d,) in rows}


def test_sigkill_then_same_command_finishes_every_item_exactly_once(tmp_path: Path) -> None:
    q = load_questionnaire("ipip-120")
    text_of = {i.text: i.id for i in q.items}
    run = tmp_path / "run"
    db = run / "run.sqlite3"
    with LoopbackServer(delay_s=0.05, reply="4") as server:
        args = [sys.executable, "-m", "personae", "survey", "--model",
                f"openai:loop@{server.base_url}", "--mode", "generate", "--concurrency", "2",
                "--no-cache", "--out", str(run)]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ})
        deadline = time.monotonic() + 120
        while _count(db) < 20:
            assert proc.poll() is None, "finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = _answered(db)
        assert 20 <= len(before) < 120
        server.bodies.clear()
        again = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
        assert again.returncode == 0, again.stderr
        asked = [next(text_of[t] for t in text_of if f'"{t}"' in b["messages"][-1]["content"])
                 for b in server.bodies]
    assert not set(asked) & before  # nothing stored before the kill was asked again
    assert len(asked) == len(set(asked)) == 120 - len(before)
    assert _count(db) == 120
    summary = json.loads((run / "summary.json").read_text())
    assert summary["run"]["counts"] == {"answers": 120, "expected": 120, "unparsable": 0,
                                        "failed_calls": 0}


@pytest.mark.model
def test_bundled_model_logprob_survey(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = run_cli("survey", "--model", "bundled", "--instrument", "ipip-120", "--mode",
                   "logprob", "--items", "10", "--out", str(run), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(run / "report.html")
    assert "personae: warning: The model is the bundled SmolLM2-135M" in proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    (admin,) = summary["scores"]
    assert summary["run"]["counts"]["answers"] == 10
    assert set(admin["domains"]) == set("NEOAC")
    assert all(1.0 <= mv["value"] <= 5.0 for mv in admin["domains"].values())
    # With the prefilled "My answer: " most of the mass lands on the digits (DESIGN §5).
    assert admin["coverage"]["value"] > 0.5
    assert any("close to noise" in w for w in summary["warnings"])
    assert (run / "report.html").stat().st_size > 5_000
