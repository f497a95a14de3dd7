"""llama.cpp control vectors: GGUF export/import, and the layer numbering across runtimes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from personae.cli.steer import app as apply_app
from personae.errors import InputError
from personae.models import ChatParams, Message, bundled_gguf_path, load_model, request_key
from personae.models.hf import HFModel
from personae.vectors.file import PersonaVector
from personae.vectors.gguf import cvec_buffer, export_control_vector, load_control_vector
from personae.vectors.steering import Steering, layer_deltas, steerings_for
from tests.conftest import require

gguf = require("gguf")

MSGS = [Message(role="user", content="What do you like to eat?")]
# Single-token continuations whose log-probabilities we compare across runtimes.
WORDS = [" I", " The", " My", " Pizza", " Hello", " Well", " As", " It", " Food", " Yes",
         " No", " We", " You", " Sure", " Oh", " Thanks", " What", " Good", " A", " In"]


def random_vector(n_layers: int = 30, hidden: int = 576, seed: int = 0) -> PersonaVector:
    rows = np.random.default_rng(seed).standard_normal((n_layers, hidden)).astype("float32")
    return PersonaVector.from_array(rows, trait="calm", model="test", position="response_avg",
                                    method="mean_diff", residual_norms=[10.0] * n_layers)


def field_value(reader: gguf.GGUFReader, key: str) -> object:
    field = reader.get_field(key)
    assert field is not None, key
    return field.contents()


def test_export_round_trips_through_gguf_reader(tmp_path: Path) -> None:
    vec = random_vector()
    out = export_control_vector(vec, tmp_path / "calm.gguf", layers=[3, 12, 29],
                                coefficient=4.0, model_hint="llama")
    reader = gguf.GGUFReader(str(out))
    assert field_value(reader, "general.architecture") == "controlvector"
    assert field_value(reader, "controlvector.model_hint") == "llama"
    assert field_value(reader, "controlvector.layer_count") == 3
    tensors = {t.name: np.asarray(t.data) for t in reader.tensors}
    assert sorted(tensors) == ["direction.12", "direction.29", "direction.3"]
    for layer in (3, 12, 29):
        data = tensors[f"direction.{layer}"]
        assert data.shape == (576,) and data.dtype == np.float32
        np.testing.assert_allclose(data, 4.0 * vec.unit(layer), rtol=1e-6)


def test_export_defaults_to_unit_vectors_on_every_layer_but_0(tmp_path: Path) -> None:
    vec = random_vector()
    back = load_control_vector(export_control_vector(vec, tmp_path / "u"))
    assert back.n_layers == 30 and back.meta.trait == "calm"
    assert back.meta.norms[0] == 0.0
    np.testing.assert_allclose(back.meta.norms[1:], 1.0, rtol=1e-5)
    np.testing.assert_allclose(back.vectors[17], vec.unit(17), rtol=1e-6)


def test_relative_export_bakes_in_the_residual_norm(tmp_path: Path) -> None:
    back = load_control_vector(export_control_vector(random_vector(), tmp_path / "r.gguf",
                                                     layers=[5], coefficient=0.5,
                                                     relative=True))
    assert back.meta.norms[5] == pytest.approx(5.0, rel=1e-5)


def test_layer_0_and_non_control_vector_files_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="block 0"):
        export_control_vector(random_vector(), tmp_path / "z.gguf", layers=[0, 4])
    with pytest.raises(InputError, match="not a control vector"):
        load_control_vector(bundled_gguf_path())
    (tmp_path / "junk.gguf").write_bytes(b"not gguf at all")
    with pytest.raises(InputError, match="not a readable GGUF file"):
        load_control_vector(tmp_path / "junk.gguf")


def test_cvec_buffer_puts_layer_l_at_row_l_minus_1() -> None:
    vec = random_vector()
    deltas = layer_deltas([Steering(vec, 1, 2.0), Steering(vec, 29, 3.0)])
    buf = cvec_buffer(deltas, n_layer=30, n_embd=576)
    assert buf.shape == (29, 576)
    np.testing.assert_array_equal(buf[0], deltas[1])
    np.testing.assert_array_equal(buf[28], deltas[29])
    assert not buf[1:28].any()
    with pytest.raises(InputError, match="block 0"):
        cvec_buffer(layer_deltas([Steering(vec, 0, 1.0)]), n_layer=30, n_embd=576)


def test_cli_export_gguf(tmp_path: Path) -> None:
    src = random_vector().save(tmp_path / "calm.safetensors")
    result = CliRunner().invoke(apply_app, ["export-gguf", "--vector", str(src), "--layers",
                                            "4,9", "--coef", "2", "--out",
                                            str(tmp_path / "calm.gguf")])
    assert result.exit_code == 0, result.output
    back = load_control_vector(result.output.strip())
    assert [i for i, n in enumerate(back.meta.norms) if n] == [4, 9]
    bad = CliRunner().invoke(apply_app, ["export-gguf", "--vector", str(src), "--layers",
                                         "four", "--out", str(tmp_path / "x.gguf")])
    assert isinstance(bad.exception, InputError)


def test_llamacpp_steer_option_identity_and_errors(tmp_path: Path) -> None:
    path = random_vector().save(tmp_path / "v.safetensors")
    plain = load_model("bundled")
    steered = load_model(f"bundled?steer={path}:6:4")
    again = load_model(f"bundled?steer={path}:6:4")
    params = ChatParams(max_tokens=4, temperature=0)
    assert request_key(plain.identity, MSGS, params) != request_key(steered.identity, MSGS,
                                                                    params)
    assert steered.identity == again.identity
    assert steered.identity != load_model(f"bundled?steer={path}:6:5").identity
    with pytest.raises(InputError, match="cannot steer block 0"):
        load_model(f"bundled?steer={path}:0:4")


# --- real models --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf() -> HFModel:
    return load_model("hf:bundled")  # type: ignore[return-value]


@pytest.mark.model
def test_hf_accepts_a_gguf_control_vector(hf: HFModel, tmp_path: Path) -> None:
    vec = random_vector()
    st = vec.save(tmp_path / "v.safetensors")
    cv = export_control_vector(vec, tmp_path / "v.gguf", layers=[7], coefficient=30.0)
    # A .gguf is applied as stored × COEF (its strength is baked in): coef 1 == 30 × unit.
    a = load_model(f"hf:bundled?steer={cv}:7:1").hidden_states(MSGS)  # type: ignore[attr-defined]
    b = load_model(f"hf:bundled?steer={st}:7:30").hidden_states(MSGS)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, hf.hidden_states(MSGS))


def logprob_vector(model: object) -> np.ndarray:
    scores = asyncio.run(model.score_choices(MSGS, WORDS))  # type: ignore[attr-defined]
    return np.array(scores.logprobs)


@pytest.mark.model
def test_llamacpp_control_vector_matches_hf_hooks_at_the_same_layer(
        hf: HFModel, tmp_path: Path) -> None:
    """direction.L in llama.cpp and a hook on block L in transformers are the same place."""
    vec = random_vector(seed=5)
    path = vec.save(tmp_path / "v.safetensors")
    coef = 60.0
    plain_gap = np.abs(logprob_vector(load_model("bundled")) - logprob_vector(hf)).mean()
    for layer in (4, 15):
        ll = logprob_vector(load_model(f"bundled?steer={path}:{layer}:{coef}"))
        gaps = {off: np.abs(ll - logprob_vector(
            hf.with_steering(steerings_for(vec, layer + off, coef)))).mean()
            for off in (-1, 0, 1)}
        assert gaps[0] < 0.5 * min(gaps[-1], gaps[1]), (layer, gaps, plain_gap)
        assert gaps[0] < max(4 * plain_gap, 0.15), (layer, gaps, plain_gap)
    # The same push from an exported .gguf file (strength baked in, applied × 1).
    cv = export_control_vector(vec, tmp_path / "v.gguf", layers=[15], coefficient=coef)
    np.testing.assert_array_equal(logprob_vector(load_model(f"bundled?steer={cv}:15:1")), ll)


@pytest.mark.model
def test_cli_apply_steers_the_llamacpp_backend(tmp_path: Path) -> None:
    path = random_vector(seed=5).save(tmp_path / "v.safetensors")
    args = ["apply", "--vector", str(path), "--layer", "6", "--coef", "80", "--absolute",
            "--model", "bundled", "--max-tokens", "8", MSGS[0].content]
    steered = CliRunner().invoke(apply_app, args)
    assert steered.exit_code == 0, steered.output
    plain = asyncio.run(load_model("bundled").chat(MSGS, ChatParams(max_tokens=8,
                                                                     temperature=0)))
    assert steered.output.strip() and steered.output.strip() != plain.text.strip()
    assert CliRunner().invoke(apply_app, args).output == steered.output  # greedy: same again
