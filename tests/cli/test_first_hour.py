"""What a new user hit in their first hour (issue 18), each as the user met it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pexpect
import pytest

from tests.conftest import assert_one_line_error, default_sigint, run_cli

MODEL = """\
rules:
  - match: "Evaluation Form"
    reply: "Therefore, the final score is 4."
replies: ["I keep the light burning.", "Maps tell me stories.", "The sea is loud today."]
"""


@pytest.fixture
def scripted(tmp_path: Path) -> str:
    (tmp_path / "model.yaml").write_text(MODEL)
    return f"scripted:{tmp_path / 'model.yaml'}"


def test_validate_takes_bundled_sets_and_names_fields_the_template_drops(tmp_path: Path) -> None:
    proc = run_cli("personas", "validate", "sample", "personagym:personagym-001")
    assert proc.returncode == 0, proc.stderr
    assert "sample: 20 personas OK" in proc.stdout
    assert "personagym:personagym-001: 1 persona OK" in proc.stdout

    mine = tmp_path / "mine.yaml"
    mine.write_text("name: Ola\nsummary: A baker.\ndemographics: {country: Poland}\n"
                    "extra: {hobby: chess}\n")
    proc = run_cli("personas", "validate", str(mine))
    assert proc.returncode == 0
    assert f"{mine}: ola: not used by template card: extra.hobby" in proc.stdout
    assert "country" not in proc.stdout  # the card renders it
    assert "- Country: Poland" in run_cli("personas", "render", str(mine)).stdout
    proc = run_cli("personas", "validate", str(mine), "--template", "facts")
    # No facts: the PersonaChat template falls back on the description (the summary).
    assert "not used by template facts: name, demographics.country, extra.hobby" \
        in proc.stdout


def test_personas_list() -> None:
    sets = run_cli("personas", "list")
    assert sets.returncode == 0
    assert "sample" in sets.stdout and "20" in sets.stdout and "200" in sets.stdout
    one = run_cli("personas", "list", "sample")
    assert one.returncode == 0
    assert "rosa-cusco-weaver" in one.stdout and "Rosa Quispe Mamani" in one.stdout
    assert len([line for line in one.stdout.splitlines() if line.strip()]) == 21


def test_a_wrong_persona_id_lists_the_ids(scripted: str) -> None:
    proc = run_cli("chat", "-m", scripted, "-p", "sample", "--persona-id", "rosa", "Hi")
    assert_one_line_error(proc, 2, "no persona with id 'rosa'", "rosa-cusco-weaver",
                          "chinedu-enugu-mechanic", "personae personas list sample")
    proc = run_cli("chat", "-m", scripted, "-p", "sample:rosa", "Hi")
    assert_one_line_error(proc, 2, "no persona 'rosa'", "rosa-cusco-weaver")


def test_help_shows_real_defaults_and_rescore_needs_a_judge(tmp_path: Path) -> None:
    help_text = " ".join(run_cli("eval", "--help", env={"COLUMNS": "200"}).stdout.split())
    for shown in ("{task: [question, ...]}", "default: personagym", "default: bundled",
                  "default: fidelity, consistency, atomic", "default: 2)",
                  "default: auto", "per_task=1, max_tokens=96"):
        assert shown in help_text, shown
    rescore_help = " ".join(run_cli("rescore", "--help", env={"COLUMNS": "200"}).stdout.split())
    assert "required" in rescore_help and "default: bundled" not in rescore_help
    proc = run_cli("rescore", str(tmp_path))
    assert proc.returncode == 2 and "Missing option '--judge'" in proc.stderr


def test_models_lists_options_and_steering() -> None:
    proc = run_cli("models", env={"COLUMNS": "200"})
    assert proc.returncode == 0
    out = proc.stdout
    for word in ("steering", "yes (control vectors)", "yes (forward hooks)", "n_ctx=4096",
                 "batch_size=16", "api_key_env=", "rate_limit=None", "openai:MODEL[@BASE_URL]"):
        assert word in out, word


def test_interactive_chat_understands_help(scripted: str) -> None:
    child = pexpect.spawn(sys.executable, ["-m", "personae", "chat", "-m", scripted],
                          encoding="utf-8", timeout=30, preexec_fn=default_sigint)
    child.expect("/help lists the commands")
    child.expect("you> ")
    child.sendline("/help")
    child.expect("/reset")
    child.expect("you> ")
    child.sendline("/nonsense")
    child.expect("unknown command /nonsense")
    child.expect("you> ")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_simulate_shows_a_short_transcript(scripted: str, tmp_path: Path) -> None:
    proc = run_cli("simulate", "--turns", "3", "--judge", "none", "--metrics", "leak",
                   "--model", scripted, "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    assert "conversation " in proc.stderr and "stopped by" in proc.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "transcripts.jsonl")
            .read_text().splitlines()]
    first_line = " ".join(rows[0]["turns"][0]["text"].split())
    assert f"Sam: {first_line}" in proc.stderr


def test_report_keeps_every_warning_the_run_had(scripted: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    # The judge writes a usable question for the mechanic from Enugu only: for the second
    # persona the run notes "no usable question", a warning only the run itself can make.
    judge = tmp_path / "judge.yaml"
    judge.write_text(MODEL.replace('replies:', '  - match: "Enugu"\n'
                                   '    reply: "What do you do when an engine will not start?"'
                                   '\nreplies:'))
    args = ["eval", "--personas", "sample", "--limit", "2", "--questions", "generate",
            "--per-task", "1", "--tasks", "Toxicity", "--suite", "fidelity",
            "--reliability-sample", "0", "--model", scripted, "--judge", f"scripted:{judge}",
            "--out", str(run)]
    proc = run_cli(*args)
    warnings = json.loads((run / "summary.json").read_text())["warnings"]
    assert any("no usable question" in w for w in warnings), (proc.stderr, warnings)
    assert run_cli("report", str(run)).returncode == 0
    assert json.loads((run / "summary.json").read_text())["warnings"] == warnings
    # A rescore does not write questions again: the note it could not make stays.
    assert run_cli("rescore", str(run), "-j", scripted).returncode == 0
    after = json.loads((run / "summary.json").read_text())["warnings"]
    assert any("no usable question" in w for w in after), after


@pytest.mark.parametrize("args", [
    ["eval", "--personas", "{missing}", "--judge", "llamacpp:/nonexistent/j.gguf"],
    ["survey", "--personas", "{missing}"],
    ["simulate", "--personas", "{missing}", "--judge", "none"],
    ["simulate", "--vector", "{missing}", "--layer", "3", "--metrics", "projection",
     "--judge", "none"],
    ["chat", "--persona", "{missing}", "Hi"],
])
def test_inputs_are_checked_before_any_model_loads(args: list[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    # A model that cannot load: the error must be about the input, found first.
    argv = [a.replace("{missing}", missing) for a in args]
    proc = run_cli(*argv, "--model", "llamacpp:/nonexistent/m.gguf")
    assert_one_line_error(proc, 2, "nope.yaml")
    assert "m.gguf" not in proc.stderr


def test_a_resumed_survey_says_how_much_was_done(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        'replies: ["4"]\nchoices: {"1": 0.1, "2": 0.1, "3": 0.2, "4": 0.4, "5": 0.2}\n')
    args = ["survey", "--model", f"scripted:{tmp_path / 'm.yaml'}", "--out",
            str(tmp_path / "run")]
    assert run_cli(*args, "--items", "4").returncode == 0
    proc = run_cli(*args, "--items", "10")  # a larger --items extends the run
    assert proc.returncode == 0, proc.stderr
    assert "survey: resuming: 4 of 10 done" in proc.stderr


def test_validate_goes_on_when_a_template_needs_a_field(tmp_path: Path) -> None:
    tpl = tmp_path / "age.j2"
    tpl.write_text("You are {{ p.name }}, aged {{ p.demographics.age + 1 }}.")
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: Ola\nsummary: A baker.\ndemographics: {age: 40}\n")
    proc = run_cli("personas", "validate", str(mine), "sample:rosa-cusco-weaver",
                   "-t", str(tpl))
    assert proc.returncode == 0, proc.stderr
    assert "mine.yaml: 1 persona OK" in proc.stdout
    assert f"{mine}: ola: not used by template {tpl}: summary" in proc.stdout
    assert "sample:rosa-cusco-weaver: 1 persona OK" in proc.stdout
