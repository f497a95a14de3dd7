"""Steering through forward hooks: the context manager, the ``steer=`` spec option, identity.

The pure hook logic runs on a tiny randomly initialised llama model (no bundled weights);
the done-when checks run on the bundled model with few tokens.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from personae.cli.steer import app as apply_app
from personae.errors import InputError
from personae.models import ChatParams, Message, load_model, request_key
from personae.models.hf import HFModel
from personae.models.hooks import apply_steering, decoder_layers, steering
from personae.vectors.file import PersonaVector, load_vector
from personae.vectors.spec import load_steer_spec, parse_steer_spec
from personae.vectors.steering import Steering, steerings_for
from tests.conftest import require

torch = require("torch")

MSGS = [Message(role="user", content="Describe your ideal weekend.")]
GREEDY = ChatParams(max_tokens=8, temperature=0)
SAMPLED = ChatParams(max_tokens=8, temperature=1.0, seed=7)


def random_vector(n_layers: int, hidden: int, *, seed: int = 0,
                  residual_norms: list[float] | None = None) -> PersonaVector:
    rows = np.random.default_rng(seed).standard_normal((n_layers, hidden)).astype("float32")
    return PersonaVector.from_array(rows, trait="t", model="test", position="response_avg",
                                    method="mean_diff", residual_norms=residual_norms)


# --- a tiny model: hook mechanics without the bundled weights ------------------------------


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=2)
    return LlamaForCausalLM(config).eval()


def tiny_logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=torch.tensor([[1, 5, 9, 3]])).logits


def hook_count(model: torch.nn.Module) -> int:
    return sum(len(block._forward_hooks) for block in decoder_layers(model))


def test_hooks_are_removed_on_exit_and_after_an_exception(tiny: torch.nn.Module) -> None:
    vec = random_vector(3, 16)
    assert hook_count(tiny) == 0
    with steering(tiny, vec, [0, 2], 3.0):
        assert hook_count(tiny) == 2
    assert hook_count(tiny) == 0
    with pytest.raises(RuntimeError, match="boom"), steering(tiny, vec, 1, 3.0):
        assert hook_count(tiny) == 1
        raise RuntimeError("boom")
    assert hook_count(tiny) == 0


def test_zero_coefficient_is_a_no_op_and_nonzero_changes_logits(tiny: torch.nn.Module) -> None:
    vec = random_vector(3, 16)
    base = tiny_logits(tiny)
    with steering(tiny, vec, 1, 0.0):
        assert torch.equal(tiny_logits(tiny), base)
    with steering(tiny, vec, 1, 5.0):
        assert not torch.allclose(tiny_logits(tiny), base)
    assert torch.equal(tiny_logits(tiny), base)  # and nothing lingers


def test_steering_adds_exactly_the_scaled_unit_vector_at_the_block_output(
        tiny: torch.nn.Module) -> None:
    vec = random_vector(3, 16)
    seen: list[torch.Tensor] = []
    block = decoder_layers(tiny)[1]
    handle = block.register_forward_hook(lambda m, a, out: seen.append(out.clone()))
    try:
        tiny_logits(tiny)
        with steering(tiny, vec, 1, 2.5):
            tiny_logits(tiny)
    finally:
        handle.remove()
    added = (seen[1] - seen[0])[0]  # every position gets the same push
    expected = torch.from_numpy(2.5 * vec.unit(1))
    assert torch.allclose(added, expected.expand_as(added), atol=1e-5)


def test_tuple_returning_layers_are_steered_too() -> None:
    # transformers 4.x decoder layers return (hidden, ...): the hook must keep the tuple.
    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, str]:
            return self.lin(x), "extra"

    class Toy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList([Block(), Block()])

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, str]:
            out: tuple[torch.Tensor, str] = (x, "")
            for block in self.layers:
                out = block(out[0])
            return out

    toy, x = Toy(), torch.ones(1, 2, 4)
    base = toy(x)
    with steering(toy, random_vector(2, 4), 1, 3.0):
        steered = toy(x)
    assert steered[1] == "extra"
    assert torch.allclose(steered[0] - base[0], torch.from_numpy(3.0 * random_vector(2, 4)
                                                                 .unit(1)).expand(1, 2, 4))


def test_relative_coefficient_uses_the_residual_norm_and_needs_one() -> None:
    with_norms = random_vector(3, 16, residual_norms=[1.0, 10.0, 100.0])
    assert np.linalg.norm(Steering(with_norms, 2, 0.5, relative=True).delta()) == \
        pytest.approx(50.0, rel=1e-5)
    with pytest.raises(InputError, match="no residual norms"):
        Steering(random_vector(3, 16), 2, 0.5, relative=True)


def test_wrong_width_or_layer_is_an_input_error(tiny: torch.nn.Module) -> None:
    with pytest.raises(InputError, match="hidden size is 16"), \
            apply_steering(tiny, [Steering(random_vector(3, 8), 1, 1.0)]):
        pass
    with pytest.raises(InputError, match="layers 0..2"), \
            apply_steering(tiny, [Steering(random_vector(5, 16), 4, 1.0)]):
        pass
    assert hook_count(tiny) == 0


# --- the spec syntax ----------------------------------------------------------------------


def test_spec_parsing_reads_from_the_right() -> None:
    items = parse_steer_spec("/a:b,c/v.safetensors:12:4,w.pt:all:-2.5e-1r")
    assert [(i.path, i.layer, i.coefficient, i.relative) for i in items] == [
        ("/a:b,c/v.safetensors", 12, 4.0, False), ("w.pt", None, -0.25, True)]


@pytest.mark.parametrize("spec, needle", [
    ("v.safetensors:12", "could not read"),
    ("v.safetensors:twelve:4", "could not read"),
    ("v.safetensors:12:four", "could not read"),
])
def test_malformed_specs_are_one_line_input_errors(spec: str, needle: str) -> None:
    with pytest.raises(InputError, match=needle) as info:
        parse_steer_spec(spec)
    assert spec in str(info.value) and "\n" not in str(info.value)


def test_bad_files_and_layers_name_the_spec_item(tmp_path: Path) -> None:
    saved = random_vector(30, 576).save(tmp_path / "v.safetensors")
    cases = [(f"{tmp_path}/missing.safetensors:3:4", "no such vector file"),
             (f"{saved}:30:4", "layer 30 is out of range"),
             (f"{saved}:3:4r", "no residual norms")]
    for spec, needle in cases:
        with pytest.raises(InputError) as info:
            load_model(f"hf:bundled?steer={spec}")
        msg = str(info.value)
        assert needle in msg and "steer spec" in msg and "\n" not in msg, msg


# --- the bundled model -------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf() -> HFModel:
    return load_model("hf:bundled")  # type: ignore[return-value]


@pytest.fixture(scope="module")
def vec(hf: HFModel) -> PersonaVector:
    states = hf.hidden_states(MSGS)
    norms = [float(np.linalg.norm(states[layer + 1], axis=-1).mean()) for layer in range(30)]
    return random_vector(30, 576, residual_norms=norms)


def chat(model: HFModel, params: ChatParams) -> str:
    return asyncio.run(model.chat(MSGS, params)).text


@pytest.mark.model
def test_bundled_zero_coefficient_matches_and_large_one_changes_output(
        hf: HFModel, vec: PersonaVector) -> None:
    base = chat(hf, GREEDY)
    with steering(hf.model, vec, 6, 0.0):
        assert chat(hf, GREEDY) == base
    with steering(hf.model, vec, 6, 2.0, relative=True):
        assert chat(hf, GREEDY) != base
    assert chat(hf, GREEDY) == base


@pytest.mark.model
def test_hidden_states_show_the_push_at_row_layer_plus_one(hf: HFModel,
                                                           vec: PersonaVector) -> None:
    # Row L + 1 of hidden_states is block L's output: rows up to L are untouched, row L + 1
    # carries exactly the added vector, later rows move.
    layer = 9
    base = hf.hidden_states(MSGS)
    steered = hf.with_steering(steerings_for(vec, layer, 0.5, relative=True)).hidden_states(MSGS)
    assert np.array_equal(base[: layer + 1], steered[: layer + 1])
    delta = Steering(vec, layer, 0.5, relative=True).delta()
    assert np.allclose(steered[layer + 1] - base[layer + 1], delta, atol=1e-3)
    assert not np.allclose(steered[layer + 2], base[layer + 2], atol=1e-2)


@pytest.mark.model
def test_saved_and_reloaded_vector_steers_identically(hf: HFModel, vec: PersonaVector,
                                                      tmp_path: Path) -> None:
    """Done-when: extracted/built, saved, re-loaded -> identical steered outputs."""
    layer, coef = 8, 0.6
    path = vec.save(tmp_path / "trait.safetensors")
    loaded = load_vector(path)
    outputs: dict[str, list[str]] = {}
    for name, v in (("memory", vec), ("file", loaded)):
        with steering(hf.model, v, layer, coef, relative=True):
            outputs[name] = [chat(hf, GREEDY), chat(hf, SAMPLED)]
    spec_model: HFModel = load_model(f"hf:bundled?steer={path}:{layer}:{coef}r")  # type: ignore
    outputs["spec"] = [chat(spec_model, GREEDY), chat(spec_model, SAMPLED)]
    twin = hf.with_steering(steerings_for(loaded, layer, coef, relative=True))
    outputs["twin"] = [chat(twin, GREEDY), chat(twin, SAMPLED)]
    assert outputs["memory"] == outputs["file"] == outputs["spec"] == outputs["twin"]
    assert outputs["memory"][0] != chat(hf, GREEDY)  # and the steering did something
    assert spec_model.identity == twin.identity


@pytest.mark.model
def test_persona_vectors_pt_file_steers_the_same_block(hf: HFModel, tmp_path: Path) -> None:
    layer, coef = 7, 60.0
    rows = np.random.default_rng(3).standard_normal((31, 576)).astype("float32")
    torch.save(torch.from_numpy(rows), tmp_path / "t_response_avg_diff.pt")  # row L+1 = block L
    ours = PersonaVector.from_array(rows[1:], trait="t", model="test", position="response_avg",
                                    method="mean_diff")
    st = ours.save(tmp_path / "t.safetensors")
    from_pt = load_model(f"hf:bundled?steer={tmp_path}/t_response_avg_diff.pt:{layer}:{coef}")
    from_st = load_model(f"hf:bundled?steer={st}:{layer}:{coef}")
    a = from_pt.hidden_states(MSGS)  # type: ignore[attr-defined]
    b = from_st.hidden_states(MSGS)  # type: ignore[attr-defined]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, hf.hidden_states(MSGS))
    # An off-by-one reading of the .pt rows would push along another direction.
    wrong = ours.vectors[layer - 1] / np.linalg.norm(ours.vectors[layer - 1])
    assert not np.allclose(a[layer + 1] - hf.hidden_states(MSGS)[layer + 1], coef * wrong,
                           atol=1e-2)


@pytest.mark.model
def test_cache_keys_separate_steered_and_unsteered_specs(hf: HFModel, vec: PersonaVector,
                                                         tmp_path: Path) -> None:
    path = vec.save(tmp_path / "v.safetensors")
    idents = {
        "plain": hf.identity,
        "a": load_model(f"hf:bundled?steer={path}:5:4").identity,
        "a_again": load_model(f"hf:bundled?steer={path}:5:4").identity,
        "coef": load_model(f"hf:bundled?steer={path}:5:-4").identity,
        "layer": load_model(f"hf:bundled?steer={path}:6:4").identity,
        "rel": load_model(f"hf:bundled?steer={path}:5:4r").identity,
    }
    keys = {k: request_key(v, MSGS, GREEDY) for k, v in idents.items()}
    assert keys["a"] == keys["a_again"]
    assert len({keys[k] for k in ("plain", "a", "coef", "layer", "rel")}) == 5
    # A different vector file at the same layer and coefficient is a different model too.
    other = random_vector(30, 576, seed=1).save(tmp_path / "w.safetensors")
    assert load_model(f"hf:bundled?steer={other}:5:4").identity != idents["a"]


@pytest.mark.model
def test_with_steering_shares_weights_and_calls_do_not_interleave(
        hf: HFModel, vec: PersonaVector) -> None:
    hooks_before = hook_count(hf.model)  # transformers keeps its own recording hooks
    up = hf.with_steering(steerings_for(vec, 5, 1.0, relative=True))
    down = hf.with_steering(steerings_for(vec, 5, -1.0, relative=True))
    assert up.model is hf.model and down.tokenizer is hf.tokenizer
    assert len({hf.identity, up.identity, down.identity}) == 3
    alone = [chat(m, GREEDY) for m in (hf, up, down)]

    async def together() -> list[str]:
        outs = await asyncio.gather(*(m.chat(MSGS, GREEDY) for m in (hf, up, down, up, hf)))
        return [o.text for o in outs]

    assert asyncio.run(together()) == [alone[0], alone[1], alone[2], alone[1], alone[0]]
    assert len(set(alone)) == 3
    assert hook_count(hf.model) == hooks_before


@pytest.mark.model
def test_score_choices_is_steered(hf: HFModel, vec: PersonaVector) -> None:
    choices = ["1", "2", "3", "4", "5"]
    plain = asyncio.run(hf.score_choices(MSGS, choices, prefill="My answer: "))
    pushed = asyncio.run(hf.with_steering(steerings_for(vec, 10, 1.0, relative=True))
                         .score_choices(MSGS, choices, prefill="My answer: "))
    assert max(abs(a - b) for a, b in zip(plain.probs, pushed.probs, strict=True)) > 1e-3


@pytest.mark.model
def test_cli_apply_prints_the_steered_reply(hf: HFModel, vec: PersonaVector,
                                            tmp_path: Path) -> None:
    path = vec.save(tmp_path / "v.safetensors")
    runner = CliRunner()
    args = ["apply", "--vector", str(path), "--layer", "8", "--coef", "0.6", "--relative",
            "--model", "hf:bundled", "--max-tokens", "8", MSGS[0].content]
    result = runner.invoke(apply_app, args)
    assert result.exit_code == 0, result.output
    twin = hf.with_steering(steerings_for(vec, 8, 0.6, relative=True))
    assert result.output.strip() == chat(twin, GREEDY).strip()


def test_cli_apply_rejects_a_backend_that_cannot_steer(tmp_path: Path) -> None:
    path = random_vector(30, 576).save(tmp_path / "v.safetensors")
    result = CliRunner().invoke(apply_app, ["apply", "--vector", str(path), "--layer", "3",
                                            "--coef", "1", "--model", "openai:gpt-4o-mini",
                                            "hello"])
    assert isinstance(result.exception, InputError)
    assert "steering needs the hf or llamacpp backend" in str(result.exception)


def test_load_steer_spec_expands_all_layers(tmp_path: Path) -> None:
    rows = np.zeros((4, 8), np.float32)
    rows[1, 0] = rows[3, 2] = 1.0
    path = PersonaVector.from_array(rows, trait="t", model="m", position="response_avg",
                                    method="mean_diff").save(tmp_path / "v.safetensors")
    assert [s.layer for s in load_steer_spec(f"{path}:all:2")] == [1, 3]
