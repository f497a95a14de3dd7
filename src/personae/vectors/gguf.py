"""llama.cpp control vectors: export a persona vector to GGUF, read one back, and build the
buffer ``llama_set_adapter_cvec`` takes.

The layer numbers agree with personae's: tensor ``direction.N`` is added to the output of
decoder block ``N`` counting from 0. llama.cpp's loader puts ``direction.N`` at row ``N - 1``
of its buffer ("starting from layer 1"), copies row ``il - 1`` into the tensor of layer ``il``
and adds that tensor after block ``il`` of its graph loop (``build_cvec(cur, il)``, ``il``
from 0). So block 0 cannot be steered through llama.cpp (``direction.0`` is rejected), and
the tests check the numbering against hooks on the transformers model.

The file holds ``general.architecture = "controlvector"``, ``controlvector.model_hint`` (the
model type, "llama" for the bundled SmolLM2), ``controlvector.layer_count`` (the number of
directions, as repeng writes it) and one float32 tensor of length ``hidden`` per layer.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from personae._files import atomic_write
from personae.errors import InputError
from personae.vectors.file import PersonaVector
from personae.vectors.steering import Steering

ARCH = "controlvector"


def _gguf() -> Any:
    try:
        import gguf
    except ImportError:
        raise InputError("GGUF control vectors need the gguf package: "
                         "pip install 'personae[local]'") from None
    return gguf


def export_control_vector(
    vector: PersonaVector,
    path: str | Path,
    *,
    layers: Sequence[int] | None = None,
    coefficient: float | None = None,
    relative: bool = False,
    model_hint: str = "llama",
) -> Path:
    """Write ``vector`` as a llama.cpp control vector (``direction.L`` = block ``L``).

    Without ``coefficient`` the rows are unit vectors (choose the strength in llama.cpp,
    ``--control-vector-scaled FILE 4``); with it, ``coefficient × unit`` is baked in
    (``relative``: × the layer's residual norm). ``layers`` defaults to every non-zero layer
    but 0.

    >>> import tempfile
    >>> v = PersonaVector.from_array(np.ones((3, 4), np.float32), trait="t", model="m",
    ...                              position="response_avg", method="mean_diff")
    >>> out = export_control_vector(v, Path(tempfile.mkdtemp()) / "t.gguf", coefficient=2.0)
    >>> sorted(load_control_vector(out).meta.norms)
    [0.0, 2.0, 2.0]
    """
    gguf = _gguf()
    if layers is None:
        norms = np.linalg.norm(vector.vectors, axis=1)
        layers = [i for i in range(1, vector.n_layers) if norms[i] > 0]
    chosen = sorted(set(layers))
    if not chosen:
        raise InputError("export needs at least one layer")
    if 0 in chosen:
        raise InputError("llama.cpp cannot steer block 0 (its control vectors start at "
                         "block 1): drop layer 0")
    rows = {layer: (Steering(vector, layer, coefficient, relative).delta()
                    if coefficient is not None else vector.unit(layer).astype(np.float32))
            for layer in chosen}
    target = Path(path)
    if target.suffix != ".gguf":
        target = target.with_name(target.name + ".gguf")
    # GGUFWriter writes to a path; build the file privately, then move it in atomically.
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "cvec.gguf"
        writer = gguf.GGUFWriter(str(staged), ARCH)
        writer.add_string(f"{ARCH}.model_hint", model_hint)
        writer.add_uint32(f"{ARCH}.layer_count", len(rows))
        writer.add_name(vector.meta.trait)
        writer.add_string("personae.layer_convention", "direction.N = output of block N, from 0")
        writer.add_string("personae.model", vector.meta.model)
        writer.add_string("personae.strength", "unit vectors" if coefficient is None else
                          f"{coefficient:g}{' x residual norm' if relative else ''}")
        if vector.meta.vectors_sha256:
            writer.add_string("personae.vectors_sha256", vector.meta.vectors_sha256)
        for layer, row in rows.items():
            writer.add_tensor(f"direction.{layer}", np.ascontiguousarray(row, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        atomic_write(target, staged.read_bytes())
    return target


def _field_text(reader: Any, key: str) -> str | None:
    field = reader.get_field(key)
    if field is None:
        return None
    try:
        value = field.contents()
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) else None


def load_control_vector(path: str | Path) -> PersonaVector:
    """Read a llama.cpp control vector; row ``N`` of the result is ``direction.N`` (block
    ``N``), rows with no direction are zero. Values are kept as stored (not normalised)."""
    gguf = _gguf()
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such control vector file")
    try:
        reader = gguf.GGUFReader(str(p))
    except Exception as exc:
        raise InputError(f"{p}: not a readable GGUF file ({type(exc).__name__})") from None
    arch = _field_text(reader, "general.architecture")
    if arch != ARCH:
        raise InputError(f"{p}: not a control vector (general.architecture is {arch!r}, "
                         f"expected {ARCH!r})")
    rows: dict[int, np.ndarray] = {}
    for t in reader.tensors:
        prefix, _, index = t.name.partition(".")
        if prefix != "direction" or not index.isdigit() or int(index) == 0:
            raise InputError(f"{p}: tensor {t.name!r} is not direction.N with N >= 1")
        data = np.asarray(t.data)
        if data.dtype != np.float32 or data.ndim != 1:
            raise InputError(f"{p}: tensor {t.name} is not a float32 vector")
        rows[int(index)] = data
    if not rows:
        raise InputError(f"{p}: holds no direction tensors")
    widths = {r.shape[0] for r in rows.values()}
    if len(widths) != 1:
        raise InputError(f"{p}: direction tensors have different lengths {sorted(widths)}")
    vectors = np.zeros((max(rows) + 1, widths.pop()), np.float32)
    for layer, row in rows.items():
        vectors[layer] = row
    return PersonaVector.from_array(
        vectors,
        trait=_field_text(reader, "general.name") or p.stem,
        model=_field_text(reader, "personae.model") or
        f"{_field_text(reader, f'{ARCH}.model_hint') or 'unknown'} (llama.cpp control vector)",
        position="response_avg",
        method="imported",
        source=str(p),
        source_hash=hashlib.sha256(p.read_bytes()).hexdigest(),
        extra={"imported_from": "llama.cpp control vector", "position": "unknown"},
    )


def cvec_buffer(deltas: dict[int, np.ndarray], n_layer: int, n_embd: int) -> np.ndarray:
    """The ``(n_layer - 1, n_embd)`` float32 buffer for ``llama_set_adapter_cvec``: row
    ``L - 1`` is what is added after block ``L`` (the buffer starts at layer 1).

    >>> buf = cvec_buffer({2: np.ones(3, np.float32)}, n_layer=4, n_embd=3)
    >>> buf.shape, buf[1].tolist()
    ((3, 3), [1.0, 1.0, 1.0])
    """
    buf = np.zeros((n_layer - 1, n_embd), np.float32)
    for layer, delta in deltas.items():
        if layer == 0:
            raise InputError("llama.cpp cannot steer block 0 (control vectors start at block "
                             "1); use the hf backend for layer 0")
        if layer >= n_layer:
            raise InputError(f"cannot steer layer {layer}: the model has layers "
                             f"0..{n_layer - 1}")
        if delta.shape != (n_embd,):
            raise InputError(f"steering vector width {delta.shape[0]} does not match the "
                             f"model's hidden size {n_embd}")
        buf[layer - 1] += delta
    return buf


__all__ = ["ARCH", "cvec_buffer", "export_control_vector", "load_control_vector"]
