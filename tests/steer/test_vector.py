"""Vector files: safetensors + sidecar round trip, integrity, persona_vectors .pt import."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from personae.errors import InputError
from personae.vectors.file import PersonaVector, load_vector


def _vector(**meta: object) -> PersonaVector:
    rng = np.random.default_rng(0)
    fields = {"trait": "t", "model": "m", "position": "prompt_last", "method": "pca", **meta}
    return PersonaVector.from_array(rng.standard_normal((6, 8)).astype(np.float32), **fields)


def test_round_trip_keeps_values_and_metadata(tmp_path: Path) -> None:
    v = _vector(residual_norms=[1.0] * 6)
    path = v.save(tmp_path / "t")
    assert path.name == "t.safetensors" and (tmp_path / "t.json").is_file()
    back = load_vector(path)
    assert np.array_equal(back.vectors, v.vectors)
    assert back.meta.position == "prompt_last" and back.meta.method == "pca"
    assert back.meta.norms == pytest.approx(np.linalg.norm(v.vectors, axis=1).tolist())
    assert back.meta.residual_norms == [1.0] * 6 and len(back.meta.vectors_sha256) == 64


def test_a_changed_tensor_file_or_missing_sidecar_is_refused(tmp_path: Path) -> None:
    path = _vector().save(tmp_path / "t.safetensors")
    other = _vector(trait="u")
    other = PersonaVector(other.vectors * 2, other.meta)
    other.save(tmp_path / "u.safetensors")
    (tmp_path / "u.safetensors").replace(path)  # tensors no longer match t.json
    with pytest.raises(InputError, match="does not match its sidecar"):
        load_vector(path)
    (tmp_path / "t.json").unlink()
    with pytest.raises(InputError, match="sidecar t.json is missing"):
        load_vector(path)


def test_saving_never_overwrites_a_json_file_that_is_not_a_sidecar(tmp_path: Path) -> None:
    trait = tmp_path / "evil.json"
    trait.write_text(json.dumps({"instruction": [], "questions": []}))
    with pytest.raises(InputError, match="not a personae vector sidecar"):
        _vector().save(tmp_path / "evil.safetensors")
    assert json.loads(trait.read_text()) == {"instruction": [], "questions": []}
    _vector().save(tmp_path / "ok.safetensors")
    _vector().save(tmp_path / "ok.safetensors")  # its own sidecar may be replaced


def test_persona_vectors_pt_rows_shift_by_one(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    rows = torch.randn(31, 8)
    torch.save(rows, tmp_path / "evil_prompt_avg_diff.pt")
    v = load_vector(tmp_path / "evil_prompt_avg_diff.pt")
    assert v.n_layers == 30
    assert np.array_equal(v.at(0), rows[1].numpy())  # row 1 is block 0
    assert np.array_equal(v.at(29), rows[30].numpy())
    assert (v.meta.trait, v.meta.position, v.meta.method) == ("evil", "prompt_avg", "imported")
    torch.save({"not": "a tensor"}, tmp_path / "bad.pt")
    with pytest.raises(InputError, match="num_layers \\+ 1, hidden"):
        load_vector(tmp_path / "bad.pt")
