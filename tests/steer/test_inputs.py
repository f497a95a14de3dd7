"""Every ``personae steer`` command checks its inputs before it loads a model, and the
coefficient flags are one pair with one default on every command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from personae.cli.steer import app
from personae.errors import InputError
from personae.runtime.store import RunStore
from personae.vectors.file import PersonaVector
from tests.conftest import require


class ModelLoaded(Exception):
    """Raised instead of loading a model: a check that ran after this point ran too late."""


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import personae.models
    import personae.models.spec
    from personae.models.hf import HFModel
    from personae.models.llamacpp import LlamaCppModel

    def refuse(*args: object, **kwargs: object) -> None:
        raise ModelLoaded("a model was loaded")

    monkeypatch.setattr(personae.models, "load_model", refuse)
    monkeypatch.setattr(personae.models.spec, "load_model", refuse)
    monkeypatch.setattr(HFModel, "__init__", refuse)
    monkeypatch.setattr(LlamaCppModel, "__init__", refuse)


def invoke(*args: str) -> BaseException | None:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exception


def input_error(*args: str) -> str:
    exc = invoke(*args)
    assert isinstance(exc, InputError), repr(exc)
    assert "\n" not in str(exc)
    return str(exc)


@pytest.fixture
def vec(tmp_path: Path) -> Path:
    rows = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32)
    v = PersonaVector.from_array(rows, trait="extroverted", model="m",
                                 position="response_avg", method="mean_diff",
                                 residual_norms=[10.0] * 6)
    return v.save(tmp_path / "v.safetensors")


@pytest.fixture
def pt(tmp_path: Path) -> Path:
    path = tmp_path / "evil_response_avg_diff.pt"
    torch = require("torch")
    torch.save(torch.ones(7, 8), path)  # persona_vectors: 6 blocks + the embedding row
    return path


SIM_ROW = {"conversation_id": "c1", "persona_ids": ["ana", "bo"], "seed": 0,
           "stop_reason": "max_turns",
           "agents": [{"id": "ana", "name": "Ana", "role": "persona", "persona_id": "ana"},
                      {"id": "bo", "name": "Bo", "role": "persona", "persona_id": "bo"}],
           "turns": [{"index": 0, "turn": 1, "speaker": "ana", "name": "Ana", "role": "persona",
                      "text": "Hello Bo.", "started": 1.0, "latency_s": 0.1,
                      "completion_tokens": 3},
                     {"index": 1, "turn": 1, "speaker": "bo", "name": "Bo", "role": "persona",
                      "text": "Hi Ana!", "started": 2.0, "latency_s": 0.1,
                      "completion_tokens": 3}]}


def test_monitor_rejects_a_bad_transcript_without_loading_a_model(
        no_model: None, tmp_path: Path, vec: Path) -> None:
    bad = tmp_path / "transcripts.jsonl"
    row = json.loads(json.dumps(SIM_ROW))
    row["turns"][1]["speaker"] = "cy"
    bad.write_text(json.dumps(row) + "\n")
    msg = input_error("monitor", bad, "-v", vec, "-l", "2")
    assert msg == f"{bad}:1: turn 1: speaker 'cy' is not one of the conversation's agents " \
                  "(ana, bo)"
    good = tmp_path / "good" / "transcripts.jsonl"
    good.parent.mkdir()
    good.write_text(json.dumps(SIM_ROW) + "\n")
    assert "no agent 'cy' in this transcript (agents: ana, bo)" in input_error(
        "monitor", good, "-v", vec, "-l", "2", "--agent", "cy")
    assert "layers 0..5" in input_error("monitor", good, "-v", vec, "-l", "6")
    assert "is a directory" in input_error("monitor", good, "-v", vec, "-l", "2", "-o",
                                           tmp_path)
    assert "use an hf: model" in input_error("monitor", good, "-v", vec, "-l", "2", "-m",
                                             "bundled")
    # With every input right, the command gets as far as loading the model.
    assert isinstance(invoke("monitor", good, "-v", vec, "-l", "2", "--agent", "bo"),
                      ModelLoaded)


def test_extract_checks_trait_method_and_output_before_loading(
        no_model: None, tmp_path: Path) -> None:
    trait = tmp_path / "calm.json"
    trait.write_text(json.dumps({"instruction": [{"pos": "Be calm.", "neg": "Panic."}],
                                 "questions": ["How are you?"]}))
    # Default --out is calm.safetensors beside calm.json in the working directory: its
    # sidecar would overwrite the trait file, so it must fail now, not after extraction.
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        assert "calm.json: exists and is not a personae vector sidecar" in input_error(
            "extract", "-t", "calm.json")
    assert "--method pca needs at least 2" in input_error(
        "extract", "-t", trait, "--method", "pca", "-o", tmp_path / "x.safetensors")
    assert "no such trait file" in input_error("extract", "-t", tmp_path / "nope.json")
    assert "use an hf: model" in input_error("extract", "-t", trait, "-m", "bundled",
                                             "-o", tmp_path / "x.safetensors")
    assert isinstance(invoke("extract", "-t", trait, "-o", tmp_path / "x.safetensors"),
                      ModelLoaded)


def test_apply_checks_the_steering_before_loading(no_model: None, tmp_path: Path,
                                                  vec: Path, pt: Path) -> None:
    assert "layers 0..5" in input_error("apply", "hi", "-v", vec, "-l", "9", "-c", "0.2")
    assert "no such vector file" in input_error("apply", "hi", "-v", tmp_path / "x.pt",
                                                "-l", "1", "-c", "1")
    # Relative is the default; a .pt file has no residual norms: the error says what to do.
    msg = input_error("apply", "hi", "-v", pt, "-l", "1", "-c", "4")
    assert msg.startswith(f"{pt}: relative coefficients (--relative, the default)")
    assert msg.endswith("pass --absolute for coefficients in activation units")
    assert "cannot steer block 0" in input_error("apply", "hi", "-v", vec, "-l", "0", "-c",
                                                 "1", "-m", "bundled")
    assert isinstance(invoke("apply", "hi", "-v", pt, "-l", "1", "-c", "4", "--absolute"),
                      ModelLoaded)
    assert isinstance(invoke("apply", "hi", "-v", vec, "-l", "1", "-c", "0.2"), ModelLoaded)
    assert isinstance(invoke("apply", "hi", "-v", vec, "-l", "1", "-c", "0.2", "--relative"),
                      ModelLoaded)


def test_sweep_checks_questionnaire_scale_and_run_dir_before_loading(
        no_model: None, tmp_path: Path, vec: Path, pt: Path) -> None:
    out = tmp_path / "run"
    assert "no such questionnaire file" in input_error(
        "sweep", "-v", vec, "-l", "1", "--instrument", tmp_path / "q.yaml", "-o", out)
    assert "no items score on scale 'Z'" in input_error(
        "sweep", "-v", vec, "-l", "1", "--scale", "Z", "-o", out)
    msg = input_error("sweep", "-v", pt, "-l", "1", "-t", "extroverted", "-o", out)
    assert "pass --absolute" in msg
    (tmp_path / "file").write_text("x")
    assert "exists and is not a directory" in input_error("sweep", "-v", vec, "-l", "1",
                                                          "-o", tmp_path / "file")
    assert not out.exists()
    # A run directory that holds a sweep with other settings is refused before the model.
    store = RunStore(out)
    store.bind_config({"layer": 3})
    store.close()
    assert "holds a run with other settings" in input_error("sweep", "-v", vec, "-l", "1",
                                                            "-o", out)
    assert isinstance(invoke("sweep", "-v", pt, "-l", "1", "-t", "extroverted", "--absolute",
                             "-o", tmp_path / "run2"), ModelLoaded)


def test_export_gguf_shares_the_flag_pair(tmp_path: Path, vec: Path, pt: Path) -> None:
    from personae.vectors.gguf import load_control_vector

    out = tmp_path / "v.gguf"
    assert "needs --coef" in input_error("export-gguf", "-v", vec, "-o", out, "--absolute")
    assert "pass --absolute" in input_error("export-gguf", "-v", pt, "-o", out, "--coef", "2")
    assert "layers 0..5" in input_error("export-gguf", "-v", vec, "-o", out, "--layers", "2,8")
    assert not out.exists()
    assert invoke("export-gguf", "-v", vec, "-o", out, "--coef", "0.5", "--layers", "2") is None
    # Relative by default: 0.5 × the residual norm of 10.
    assert np.linalg.norm(load_control_vector(out).vectors[2]) == pytest.approx(5.0)
    assert invoke("export-gguf", "-v", vec, "-o", out, "--coef", "0.5", "--layers", "2",
                  "--absolute") is None
    assert np.linalg.norm(load_control_vector(out).vectors[2]) == pytest.approx(0.5)


def test_apply_and_sweep_document_one_default() -> None:
    for command in ("apply", "sweep"):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0
        text = " ".join(result.stdout.split())
        assert re.search(r"--relative\s+/?\s*--absolute", text)
        assert "[default: relative]" in text
