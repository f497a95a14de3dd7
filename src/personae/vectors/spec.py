"""Steerings written as a model-spec option (``hf:bundled?steer=SPEC``,
``bundled?steer=SPEC``); `parse_steer_spec` reads the syntax, `load_steer_spec` the files:

    SPEC    = ITEM ("," ITEM)*
    ITEM    = FILE ":" LAYER ":" COEF ["r"]
    LAYER   = an integer (decoder block, from 0) or "all" (every non-zero layer of the file)
    COEF    = a number; a trailing "r" makes it relative: COEF × the layer's typical residual
              norm (``residual_norms`` in the vector's sidecar)

FILE is a personae vector (``.safetensors`` with its ``.json`` sidecar), a persona_vectors
``.pt`` file (its row ``L + 1`` is block ``L``; handled on load), or a llama.cpp control
vector (``.gguf``). Items are read from the right, so a FILE may contain ``:`` (``C:\\v.pt``)
and even ``,``; percent-encode ``&``, ``#``, ``+`` or ``%`` in a path (``%26``), as in any
query string. A ``.gguf`` control vector is applied as llama.cpp applies it: COEF × the stored
direction, not normalised (such files often carry their strength baked in).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from personae.errors import InputError
from personae.vectors.file import PersonaVector, load_vector
from personae.vectors.gguf import load_control_vector
from personae.vectors.steering import Steering

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# One item, anchored where the previous one ended: FILE is the shortest text that lets the
# rest of the item (":LAYER:COEF[r]" then "," or the end) match, so paths may hold ":" or ",".
_ITEM = re.compile(rf"(?P<file>.+?):(?P<layer>\d+|all):(?P<coef>{_NUMBER})(?P<rel>r?)(?:,|$)")
SPEC_SYNTAX = "FILE:LAYER:COEF[r][,FILE:LAYER:COEF[r]...]"


@dataclass(frozen=True)
class SteerItem:
    """One parsed ``FILE:LAYER:COEF[r]`` item (``layer`` None means "all")."""

    path: str
    layer: int | None
    coefficient: float
    relative: bool


def parse_steer_spec(text: str) -> list[SteerItem]:
    """Parse ``FILE:LAYER:COEF[r],...`` (nothing is loaded).

    >>> [(i.path, i.layer, i.coefficient, i.relative)
    ...  for i in parse_steer_spec("C:/v/a.safetensors:12:4,b.pt:8:-0.5r")]
    [('C:/v/a.safetensors', 12, 4.0, False), ('b.pt', 8, -0.5, True)]
    """
    items: list[SteerItem] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if m is None:
            raise InputError(f"steer spec {text!r}: expected {SPEC_SYNTAX} (e.g. "
                             f"evil.safetensors:12:4 or evil.safetensors:12:0.5r), "
                             f"could not read {text[pos:]!r}")
        layer = None if m["layer"] == "all" else int(m["layer"])
        items.append(SteerItem(m["file"], layer, float(m["coef"]), m["rel"] == "r"))
        pos = m.end()
    if not items:
        raise InputError(f"steer spec is empty; expected {SPEC_SYNTAX}")
    return items


def load_steering_file(path: str | Path) -> tuple[PersonaVector, bool]:
    """A vector file for steering, and whether to unit-normalise its rows (not for .gguf)."""
    p = Path(path).expanduser()
    if p.suffix == ".gguf":
        return load_control_vector(p), False
    return load_vector(p), True


def load_steer_spec(text: str) -> list[Steering]:
    """Parse and load a steer spec; any problem is one `InputError` naming the item.

    Example (needs a file, so not run here)::

        load_steer_spec("evil.safetensors:12:4,evil.safetensors:8:0.5r")
    """
    out: list[Steering] = []
    cache: dict[str, tuple[PersonaVector, bool]] = {}
    for item in parse_steer_spec(text):
        where = f"{item.path}:{'all' if item.layer is None else item.layer}:{item.coefficient:g}"
        try:
            if item.path not in cache:
                cache[item.path] = load_steering_file(item.path)
            vector, normalize = cache[item.path]
            if item.relative and not normalize:
                raise InputError("a .gguf control vector has no residual norms; "
                                 "use an absolute coefficient")
            if item.layer is None:
                layers = [i for i, n in enumerate(np.linalg.norm(vector.vectors, axis=1))
                          if n > 0]
            else:
                layers = [item.layer]
            out.extend(Steering(vector, layer, item.coefficient, item.relative, normalize)
                       for layer in layers)
        except InputError as exc:
            raise InputError(f"steer spec {where}{'r' if item.relative else ''}: {exc}") from None
    return out
