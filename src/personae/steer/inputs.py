"""Checks every ``personae steer`` command runs on its inputs before it loads a model.

Loading a white-box model takes seconds (the first time, a minute): a typo in a file name
or an option must fail before that, as one line naming the input.
"""

from __future__ import annotations

import os
from pathlib import Path

from personae.errors import InputError
from personae.models.spec import ModelSpec, parse_model_spec
from personae.vectors.file import PersonaVector

RELATIVE_HELP = ("Coefficient × the layer's typical residual norm (--relative; needs a "
                 "vector from `personae steer extract`) or in activation units (--absolute; "
                 "any vector file).")


def require_hf_spec(model: str, what: str) -> ModelSpec:
    """The parsed spec of a white-box (``hf:``) model, checked without loading it.

    >>> require_hf_spec("hf:bundled", "monitor").backend
    'hf'
    >>> try:
    ...     require_hf_spec("bundled", "monitor")
    ... except InputError as exc:
    ...     print(str(exc)[:46])
    --model bundled: monitor reads activations; us
    """
    parsed = parse_model_spec(model)
    if parsed.backend != "hf":
        raise InputError(f"--model {model}: {what} reads activations; use an hf: model "
                         "(hf:bundled or hf:PATH)")
    if parsed.target != "bundled" and not (Path(parsed.target) / "config.json").is_file():
        raise InputError(f"--model {model}: {parsed.target} is not a Hugging Face model folder "
                         "(no config.json)")
    return parsed


def check_output_file(path: Path, option: str) -> Path:
    """``path`` can be written as a file: not a directory, under a writable folder.

    >>> import tempfile
    >>> try:
    ...     check_output_file(Path(tempfile.mkdtemp()), "--out")
    ... except InputError as exc:
    ...     print(str(exc).endswith(": is a directory; give a file name"))
    True
    """
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory; give a file name")
    _check_writable_parent(path, option)
    return path


def check_run_dir(path: Path, option: str = "--out") -> Path:
    """``path`` can hold a run: a directory or nothing yet, under a writable folder."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path}: exists and is not a directory")
    if not path.exists():
        _check_writable_parent(path, option)
    return path


def _check_writable_parent(path: Path, option: str) -> None:
    parent = path.absolute().parent
    while not parent.exists():  # atomic writes create missing folders
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{option} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: cannot write in {parent}")


def require_residual_norms(vector: PersonaVector, path: str | Path, *,
                           normalize: bool = True) -> None:
    """Relative coefficients need the vector's per-layer residual norms; say how to go on
    when it has none (a persona_vectors ``.pt`` file, a llama.cpp ``.gguf`` control vector).

    >>> import numpy as np
    >>> v = PersonaVector.from_array(np.ones((2, 3), np.float32), trait="t", model="m",
    ...                              position="response_avg", method="imported")
    >>> try:
    ...     require_residual_norms(v, "t.pt")
    ... except InputError as exc:
    ...     print(str(exc).split("; ")[-1])
    pass --absolute for coefficients in activation units
    """
    norms = vector.meta.residual_norms if normalize else None
    if not norms:
        kind = ("a llama.cpp control vector" if not normalize else "this vector file")
        raise InputError(f"{path}: relative coefficients (--relative, the default) need the "
                         f"layers' residual norms, which {kind} lacks (only vectors from "
                         "`personae steer extract` have them); pass --absolute for "
                         "coefficients in activation units")
    if len(norms) != vector.n_layers:
        raise InputError(f"{path}: has {len(norms)} residual norms for {vector.n_layers} "
                         "layers; re-extract it, or pass --absolute")


__all__ = ["RELATIVE_HELP", "check_output_file", "check_run_dir", "require_hf_spec",
           "require_residual_norms"]
