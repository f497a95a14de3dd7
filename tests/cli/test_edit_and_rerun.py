"""The edit-and-re-run loop: change one word in a persona file, run the same command again
(no ``--out``), and the run proceeds in a directory of its own, for every run kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

PERSONA = """\
id: mara
name: Mara
summary: A lighthouse keeper on a windy island who collects old maps.
facts: ["I live alone with a cat.", "I repair radios."]
"""
MODEL = """\
rules:
  - match: "Evaluation Form"
    reply: "Therefore, the final score is 4."
  - match: "tasked with writing"
    reply: "1. What would you do if the light failed during a storm?"
replies: ["I keep the light burning.", "Maps tell me stories."]
choices: {"1": 0.1, "2": 0.1, "3": 0.2, "4": 0.4, "5": 0.2}
"""

COMMANDS = {
    "eval": ["eval", "--questions", "generate", "--per-task", "1", "--tasks", "Toxicity",
             "--suite", "fidelity", "--reliability-sample", "0"],
    "survey": ["survey", "--items", "5"],
    "simulate": ["simulate", "--turns", "2", "--judge", "none", "--metrics", "leak"],
}


@pytest.mark.parametrize("kind", list(COMMANDS))
def test_editing_a_persona_then_the_same_command_runs_in_its_own_directory(
        kind: str, tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text(MODEL)
    persona = tmp_path / "mine.yaml"
    persona.write_text(PERSONA)
    model = f"scripted:{tmp_path / 'model.yaml'}"
    args = [*COMMANDS[kind], "--personas", str(persona), "--model", model]
    if kind == "eval":
        args += ["--judge", model]

    def run() -> set[Path]:
        proc = run_cli(*args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return set((tmp_path / "personae-runs").glob(f"{kind}-*"))

    first = run()
    assert len(first) == 1 and (next(iter(first)) / "report.html").is_file()
    assert run() == first  # unchanged: the same command finds (and resumes) its run

    persona.write_text(PERSONA.replace("windy", "foggy"))
    second = run()
    assert len(second) == 2, "the edited persona must get a run directory of its own"
    (new,) = second - first
    assert (new / "report.html").is_file()


def test_explicit_out_with_other_settings_is_still_refused(tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text(MODEL)
    persona = tmp_path / "mine.yaml"
    persona.write_text(PERSONA)
    args = ["survey", "--items", "5", "--personas", str(persona),
            "--model", f"scripted:{tmp_path / 'model.yaml'}", "--out", str(tmp_path / "run")]
    assert run_cli(*args).returncode == 0
    persona.write_text(PERSONA.replace("windy", "foggy"))
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert "personas_digest differ" in proc.stderr and "another --out" in proc.stderr


@pytest.mark.parametrize("kind", ["eval", "survey"])
def test_editing_the_model_or_template_file_also_gets_its_own_directory(
        kind: str, tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text(MODEL)
    (tmp_path / "mine.yaml").write_text(PERSONA)
    template = tmp_path / "t.j2"
    template.write_text("You are {{ p.name }}.")
    model = f"scripted:{tmp_path / 'model.yaml'}"
    args = [*COMMANDS[kind], "--personas", str(tmp_path / "mine.yaml"), "--model", model]
    args += ["--judge", model] if kind == "eval" else ["--template", str(template)]

    def run() -> set[Path]:
        proc = run_cli(*args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return set((tmp_path / "personae-runs").glob(f"{kind}-*"))

    first = run()
    if kind == "eval":  # the scripted model's file stands for its weights
        (tmp_path / "model.yaml").write_text(MODEL.replace("burning", "lit"))
    else:
        template.write_text("You are {{ p.name }}. Answer briefly.")
    assert len(run() - first) == 1
