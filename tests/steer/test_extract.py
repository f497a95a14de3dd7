"""Extraction: the pure math on synthetic arrays, then the bundled model with few tokens."""

from __future__ import annotations

import asyncio
import hashlib
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from personae.cli.steer import app
from personae.errors import InputError
from personae.steer.extract import (
    contrast,
    encode,
    mean_difference,
    pca_difference,
    pool,
    position_span,
    token_norms,
)


def _unit(rng: np.random.Generator, hidden: int) -> np.ndarray:
    u = rng.normal(size=hidden)
    return u / np.linalg.norm(u)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- pooling -------------------------------------------------------------------------------

def test_positions_pick_the_right_tokens() -> None:
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(3, 7, 5))  # layers, tokens, hidden
    np.testing.assert_array_equal(pool(acts, 4, "prompt_last"), acts[:, 3])
    np.testing.assert_allclose(pool(acts, 4, "prompt_avg"), acts[:, :4].mean(axis=1))
    np.testing.assert_allclose(pool(acts, 4, "response_avg"), acts[:, 4:].mean(axis=1))
    assert position_span(7, 4, "response_avg") == (4, 7)


def test_empty_response_and_bad_arguments() -> None:
    acts = np.zeros((1, 4, 2))
    with pytest.raises(ValueError, match="at least one response token"):
        pool(acts, 4, "response_avg")
    assert pool(acts, 4, "prompt_last").shape == (1, 2)  # prompt positions still work
    with pytest.raises(ValueError):
        pool(acts, 0, "prompt_avg")
    with pytest.raises(InputError, match="unknown position 'last'"):
        pool(acts, 2, "last")
    with pytest.raises(InputError, match="unknown method 'svd'"):
        contrast(acts, acts, "svd")


def test_token_norms_average_over_the_pooled_tokens() -> None:
    acts = np.zeros((2, 3, 2))
    acts[:, 0] = [3.0, 4.0]  # prompt token, norm 5
    acts[:, 1:] = [[0.0, 1.0], [0.0, 3.0]]  # response tokens, norms 1 and 3
    assert token_norms(acts, 1, "response_avg").tolist() == [2.0, 2.0]
    assert token_norms(acts, 1, "prompt_last").tolist() == [5.0, 5.0]


# -- contrast ------------------------------------------------------------------------------

def test_mean_difference_recovers_a_planted_direction() -> None:
    rng = np.random.default_rng(1)
    n, layers, hidden = 40, 4, 64
    u = np.stack([_unit(rng, hidden) for _ in range(layers)])
    base = rng.normal(size=(n, layers, hidden))
    pos = base + rng.normal(scale=0.3, size=base.shape) + 2.0 * u
    neg = base + rng.normal(scale=0.3, size=base.shape)
    v = mean_difference(pos, neg)
    assert v.shape == (layers, hidden)
    for layer in range(layers):
        assert _cos(v[layer], u[layer]) > 0.95
        assert abs(np.linalg.norm(v[layer]) - 2.0) < 0.5
    # Unpaired sample counts are fine for the mean difference.
    assert mean_difference(pos[:10], neg).shape == (layers, hidden)


def test_pca_recovers_the_direction_and_points_like_the_mean_difference() -> None:
    rng = np.random.default_rng(2)
    n, hidden = 30, 48
    u = _unit(rng, hidden)
    for seed in range(10):
        r = np.random.default_rng(seed)
        base = r.normal(size=(n, 1, hidden))
        # The shift varies in size between samples, as a trait's expression does.
        shift = r.uniform(0.5, 3.0, size=(n, 1, 1)) * u
        pos = base + shift + r.normal(scale=0.2, size=base.shape)
        neg = base + r.normal(scale=0.2, size=base.shape)
        for a, b in ((pos, neg), (neg, pos)):  # swapping the sides flips the vector
            v = pca_difference(a, b)
            md = mean_difference(a, b)
            assert _cos(v[0], md[0]) > 0.95
            assert _cos(v[0], u) * np.sign(_cos(md[0], u)) > 0.95
            # Scaled to the mean projection of the differences on the direction.
            proj = ((a - b)[:, 0] @ (v[0] / np.linalg.norm(v[0]))).mean()
            assert np.isclose(np.linalg.norm(v[0]), proj)


def test_pca_of_identical_differences_is_that_difference() -> None:
    d = np.array([1.0, -2.0, 0.5])
    pos = np.tile(d, (5, 2, 1)) + 7.0
    neg = np.full_like(pos, 7.0)
    np.testing.assert_allclose(pca_difference(pos, neg), np.tile(d, (2, 1)), atol=1e-12)


def test_pca_needs_pairs() -> None:
    with pytest.raises(ValueError, match="paired samples"):
        pca_difference(np.zeros((3, 1, 2)), np.zeros((2, 1, 2)))


class _OffsetTokenizer:
    """Splits on spaces and reports character offsets, like a fast tokenizer."""

    def __call__(self, text: str, **_: object) -> dict:
        ids, offsets, pos = [], [], 0
        for word in text.split(" "):
            ids.append(len(word))
            offsets.append((pos, pos + len(word)))
            pos += len(word) + 1
        return {"input_ids": ids, "offset_mapping": offsets}


def test_encode_counts_the_tokens_before_the_split() -> None:
    prompt = "<s> user hi <a> "
    ids, prompt_len = encode(_OffsetTokenizer(), prompt + "hello there", len(prompt))
    assert len(ids) == 6 and prompt_len == 4


# -- the CLI's input errors (no model needed) ----------------------------------------------

runner = CliRunner()


def _input_error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert isinstance(result.exception, InputError), (result.output, result.exception)
    assert result.exception.exit_code == 2
    msg = str(result.exception)
    assert "\n" not in msg
    assert result.stdout == ""
    return msg


def test_extract_cli_rejects_unknown_and_malformed_trait_files(tmp_path: Path) -> None:
    assert "missing.json: no such trait file" in _input_error(
        ["extract", "--trait", str(tmp_path / "missing.json")])
    bad = tmp_path / "bad.json"
    bad.write_text('{"instruction": [{"pos": "Be kind."}], "questions": ["Hi?"]}')
    msg = _input_error(["extract", "--trait", str(bad)])
    assert msg == f"{bad}: instruction.0.neg: Field required"
    assert "--position 'middle'" in _input_error(["extract", "--trait", "formal", "--position",
                                                   "middle"])
    assert "--method 'ica'" in _input_error(["extract", "--trait", "formal", "--method", "ica"])
    assert not (tmp_path / "bad.safetensors").exists()


def test_mounted_cli_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    from tests.conftest import assert_one_line_error, run_cli

    proc = run_cli("steer", "extract", "--trait", str(tmp_path / "nope.json"))
    assert_one_line_error(proc, 2, "nope.json")


# -- the bundled model (few tokens) --------------------------------------------------------

@pytest.fixture(scope="module")
def hf():
    from personae.models import load_model

    return load_model("hf:bundled")


@pytest.mark.model
def test_extract_save_reload_and_cache(hf, tmp_path: Path) -> None:
    from personae.steer.extract import extract_vectors
    from personae.vectors.file import POSITIONS, load_vector

    opts = {"n_instructions": 1, "n_questions": 2, "max_tokens": 12, "progress": False}
    ex = extract_vectors(hf, "extroverted", **opts)
    assert ex.model_calls > 0 and ex.cache_hits == 0
    assert len(ex.samples) == 4 and {s.side for s in ex.samples} == {"pos", "neg"}
    bundled = resources.files("personae.steer").joinpath("data", "traits", "extroverted.json")
    assert list(ex.vectors) == list(POSITIONS)
    for position, v in ex.vectors.items():
        assert v.vectors.shape == (30, 576)
        assert np.isfinite(v.vectors).all()
        norms = np.array(v.meta.norms)
        assert np.isfinite(norms).all() and (norms > 0).all()
        m = v.meta
        assert (m.trait, m.position, m.method, m.model) == ("extroverted", position,
                                                            "mean_diff", hf.identity)
        assert m.n_pairs == 2 - ex.dropped_pairs
        assert m.source_hash == hashlib.sha256(bundled.read_bytes()).hexdigest()
        assert len(m.model_hash) == 64
        assert len(m.residual_norms) == 30 and min(m.residual_norms) > 0

    paths = ex.save(tmp_path / "extro.safetensors")
    assert [p.name for p in paths] == ["extro.safetensors", "extro-prompt_last.safetensors",
                                       "extro-prompt_avg.safetensors"]
    for path, v in zip(paths, ex.vectors.values(), strict=True):
        back = load_vector(path)
        np.testing.assert_array_equal(back.vectors, v.vectors)
        assert back.meta.model_dump(exclude={"vectors_sha256"}) == v.meta.model_dump(
            exclude={"vectors_sha256"})
        assert json.loads(path.with_suffix(".json").read_text())["position"] == v.meta.position

    # The done-when check: the extracted vector, saved and re-loaded, steers to identical
    # output (greedy and sampled with the same seed) as the one in memory.
    from personae.models import ChatParams, Message
    from personae.vectors.steering import steerings_for

    msgs = [Message(role="user", content="What do you like to do on weekends?")]
    reloaded = load_vector(paths[0])
    for params in (ChatParams(max_tokens=12, temperature=0.0),
                   ChatParams(max_tokens=12, temperature=1.0, seed=7)):
        outs = [asyncio.run(hf.with_steering(steerings_for(v, 10, 0.3, relative=True))
                            .chat(msgs, params)).text
                for v in (ex.vectors["response_avg"], reloaded)]
        assert outs[0] == outs[1]

    again = extract_vectors(hf, "extroverted", **opts)
    assert again.model_calls == 0 and again.cache_hits == 4
    for position in POSITIONS:
        np.testing.assert_array_equal(again.vectors[position].vectors,
                                      ex.vectors[position].vectors)

    pca = extract_vectors(hf, "extroverted", method="pca", **opts)  # same responses, cached
    assert pca.model_calls == 0
    v, md = pca.vectors["response_avg"], ex.vectors["response_avg"]
    assert v.meta.method == "pca"
    assert all(float(v.at(L) @ md.at(L)) > 0 for L in range(30))


@pytest.mark.model
def test_vector_row_L_is_the_output_of_block_L(hf) -> None:
    """Against `HFModel.hidden_states` (one unbatched forward): row L of the vector comes
    from hidden_states row L + 1; the last block is read before the final norm."""
    import torch

    from personae.models.whitebox import read_block_outputs
    from personae.steer.extract import extract_vectors

    ex = extract_vectors(hf, "formal", n_instructions=1, n_questions=2, max_tokens=8,
                         positions=["response_avg", "prompt_last"], progress=False)
    assert ex.dropped_pairs == 0
    pooled: dict[str, dict[str, list[np.ndarray]]] = {"pos": {}, "neg": {}}
    for s in ex.samples:
        prompt_len = len(hf.tokenizer(hf.render_prompt(list(s.messages)),
                                      add_special_tokens=False)["input_ids"])
        hs = hf.hidden_states(list(s.messages), prefill=s.response)
        assert hs.shape[0] == 31 and hs.shape[1] > prompt_len
        pooled[s.side].setdefault("response_avg", []).append(hs[:, prompt_len:].mean(axis=1))
        pooled[s.side].setdefault("prompt_last", []).append(hs[:, prompt_len - 1])
        if s is ex.samples[0]:
            ids = hf.tokenizer(hf.render_prompt(list(s.messages), s.response),
                               add_special_tokens=False)["input_ids"]
            ((_, blocks),) = read_block_outputs(hf, [ids])
            np.testing.assert_allclose(blocks[:29], hs[1:30], rtol=1e-4, atol=1e-3)
            final_norm = hf.model.model.norm
            with torch.inference_mode():
                normed = final_norm(torch.from_numpy(blocks[29])).numpy()
            np.testing.assert_allclose(normed, hs[30], rtol=1e-4, atol=1e-3)
            assert not np.allclose(blocks[29], hs[30], atol=1.0)
    for position in ("response_avg", "prompt_last"):
        expected = (np.mean(pooled["pos"][position], axis=0)
                    - np.mean(pooled["neg"][position], axis=0))
        got = ex.vectors[position].vectors
        # Batched (padded) vs single forward passes: equal up to float32 noise.
        scale = np.linalg.norm(expected[1:30], axis=1, keepdims=True)
        assert (np.abs(got[:29] - expected[1:30]) <= 1e-3 * scale + 1e-3).all()
        assert not np.allclose(got[:29], expected[:29], atol=1e-2)  # off by one would fail


@pytest.mark.model
def test_extract_cli_writes_the_vector(tmp_path: Path) -> None:
    from personae.vectors.file import load_vector

    out = tmp_path / "curious.safetensors"
    result = runner.invoke(app, ["extract", "--trait", "curious", "--questions", "1",
                                 "--instructions", "1", "--max-tokens", "6", "--out", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stdout.strip() == str(out.resolve())
    v = load_vector(out)
    assert v.vectors.shape == (30, 576) and v.meta.trait == "curious"
    assert v.meta.extra["n_questions"] == 1 and v.meta.extra["max_tokens"] == 6
