"""A persona vector: one direction per decoder layer, with where it came from.

On disk a vector is two files: ``NAME.safetensors`` (tensor ``vectors``, shape
``(n_layers, hidden)``, float32) and ``NAME.json`` beside it (the `VectorMeta` sidecar:
model identity, layer convention, position, method, source trait-file hash, per-layer norms).
Row ``L`` is the direction at the output of decoder block ``L``, counting from 0 (the
personae convention, DESIGN §5).

persona_vectors' ``.pt`` files hold ``num_hidden_layers + 1`` rows where row 0 is the
embedding output and row ``L`` is block ``L - 1``; `load_vector` drops row 0 so that the
layer numbers mean the same thing in both formats. (Their last row comes from transformers'
hidden states, which give the last block's output after the final norm.)
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from personae._files import atomic_write
from personae.errors import InputError, describe_validation

FORMAT = "personae-vector/1"
LAYER_CONVENTION = "row L = output of decoder block L, from 0"
POSITIONS = ("response_avg", "prompt_last", "prompt_avg")
METHODS = ("mean_diff", "pca")
Position = Literal["response_avg", "prompt_last", "prompt_avg"]
Method = Literal["mean_diff", "pca", "imported"]
_PV_NAME = re.compile(r"^(?P<trait>.+?)_(?P<pos>response_avg|prompt_last|prompt_avg)_diff$")


class VectorMeta(BaseModel):
    """The JSON sidecar of a saved vector."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["personae-vector/1"] = FORMAT
    trait: str
    model: str = Field(description="identity of the model the vector was read from")
    model_hash: str = ""
    layer_convention: str = LAYER_CONVENTION
    position: Position
    method: Method
    source: str | None = None  # the trait file, as given
    source_hash: str | None = None  # sha256 of the trait file's bytes
    n_pairs: int = 0  # contrastive (positive, negative) samples behind the vector
    norms: list[float]  # ||vector[L]|| per layer
    # Mean L2 norm of the residual stream at each layer over the extraction prompts: makes a
    # coefficient "relative to the layer's typical residual norm" possible.
    residual_norms: list[float] | None = None
    vectors_sha256: str = ""  # of the safetensors file, checked on load
    extra: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class PersonaVector:
    """Directions for one trait, one row per decoder layer.

    >>> v = PersonaVector.from_array(np.eye(3, 4, dtype=np.float32), trait="t", model="m",
    ...                              position="response_avg", method="mean_diff")
    >>> v.n_layers, v.hidden, float(np.linalg.norm(v.unit(1)))
    (3, 4, 1.0)
    """

    vectors: np.ndarray
    meta: VectorMeta

    @classmethod
    def from_array(cls, vectors: np.ndarray, **meta: Any) -> PersonaVector:
        arr = np.ascontiguousarray(vectors, dtype=np.float32)
        if arr.ndim != 2:
            raise InputError(f"a persona vector needs shape (n_layers, hidden), got {arr.shape}")
        meta.setdefault("norms", [float(x) for x in np.linalg.norm(arr, axis=1)])
        return cls(arr, VectorMeta(**meta))

    @property
    def n_layers(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def hidden(self) -> int:
        return int(self.vectors.shape[1])

    def check_layer(self, layer: int) -> int:
        if not 0 <= layer < self.n_layers:
            raise InputError(f"layer {layer} is out of range for the {self.meta.trait!r} "
                             f"vector: it has layers 0..{self.n_layers - 1}")
        return layer

    def at(self, layer: int) -> np.ndarray:
        """The raw direction at ``layer`` (its norm is ``meta.norms[layer]``)."""
        return self.vectors[self.check_layer(layer)]

    def unit(self, layer: int) -> np.ndarray:
        """The direction at ``layer`` scaled to length 1."""
        v = self.at(layer)
        n = float(np.linalg.norm(v))
        if n == 0.0:
            raise InputError(f"the {self.meta.trait!r} vector is zero at layer {layer}")
        return v / n

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (.safetensors) and its ``.json`` sidecar; returns the tensor path."""
        from safetensors.numpy import save

        target = save_target(path)
        blob = save({"vectors": self.vectors}, metadata={"format": FORMAT})
        meta = self.meta.model_copy(update={"vectors_sha256": hashlib.sha256(blob).hexdigest()})
        atomic_write(target, blob)
        atomic_write(sidecar_path(target), meta.model_dump_json(indent=2) + "\n")
        return target


def save_target(path: str | Path) -> Path:
    """The tensor file `PersonaVector.save` writes for ``path`` (``.safetensors`` added), checked
    before any work: its ``.json`` sidecar must not overwrite another JSON file.

    >>> save_target("out/evil").name
    'evil.safetensors'
    """
    target = Path(path)
    if target.suffix != ".safetensors":
        target = target.with_name(target.name + ".safetensors")
    side = sidecar_path(target)
    if side.exists() and not _is_sidecar(side):
        # e.g. the trait file evil.json beside evil.safetensors: never overwrite input.
        raise InputError(f"{side}: exists and is not a personae vector sidecar; save the "
                         "vector under another name")
    if target.is_dir():
        raise InputError(f"{target}: is a directory; give the vector a file name")
    return target


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _is_sidecar(path: Path) -> bool:
    try:
        return json.loads(path.read_bytes()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def load_vector(path: str | Path, *, trait: str | None = None) -> PersonaVector:
    """Load a personae vector (``.safetensors`` + ``.json``) or a persona_vectors ``.pt``.

    A ``.pt`` file's row 0 (the embedding output) is dropped so that row ``L`` is block ``L``;
    its trait and position come from the file name (``evil_response_avg_diff.pt``).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such vector file")
    if p.suffix == ".pt":
        return _load_persona_vectors_pt(p, trait)
    if p.suffix != ".safetensors":
        raise InputError(f"{p}: a vector file is .safetensors (with a .json sidecar) or a "
                         "persona_vectors .pt file")
    side = sidecar_path(p)
    if not side.is_file():
        raise InputError(f"{p}: its sidecar {side.name} is missing")
    try:
        meta = VectorMeta.model_validate_json(side.read_bytes())
    except ValidationError as exc:
        raise InputError(f"{side}: {describe_validation(exc)}") from None
    blob = p.read_bytes()
    if meta.vectors_sha256 and hashlib.sha256(blob).hexdigest() != meta.vectors_sha256:
        raise InputError(f"{p}: does not match its sidecar (sha256 differs): the pair was "
                         "mixed up or the file changed")
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        vectors = load(blob)["vectors"]
    except (SafetensorError, KeyError) as exc:
        raise InputError(f"{p}: not a personae vector file ({exc})") from None
    if vectors.ndim != 2 or len(meta.norms) != vectors.shape[0]:
        raise InputError(f"{p}: shape {vectors.shape} does not match its sidecar "
                         f"({len(meta.norms)} layers)")
    return PersonaVector(np.ascontiguousarray(vectors, dtype=np.float32), meta)


def _load_persona_vectors_pt(p: Path, trait: str | None) -> PersonaVector:
    try:
        import torch
    except ImportError:
        raise InputError(f"{p}: reading .pt files needs torch "
                         "(pip install torch==2.13.0)") from None
    try:
        # weights_only: a .pt file is a pickle; never let one run code.
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{p}: not a readable .pt tensor file ({type(exc).__name__})") from None
    if not isinstance(data, torch.Tensor) or data.ndim != 2 or data.shape[0] < 2:
        raise InputError(f"{p}: expected one tensor of shape (num_layers + 1, hidden) as "
                         "persona_vectors saves it")
    m = _PV_NAME.match(p.stem)
    return PersonaVector.from_array(
        data[1:].float().numpy(),
        trait=trait or (m["trait"] if m else p.stem),
        model="unknown (persona_vectors .pt)",
        position=m["pos"] if m else "response_avg",
        method="imported",
        source=str(p),
        source_hash=file_digest(p),
        extra={"imported_from": "persona_vectors", "dropped_row_0": "embedding output"},
    )


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (trait files, transcripts)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
