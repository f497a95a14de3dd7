"""Steering: add ``coefficient × unit vector`` to the output of decoder blocks.

A `Steering` names one vector, one layer and one coefficient. On a transformers model it is
applied by forward hooks on decoder block ``L`` (from 0: the personae convention), at every
position, prompt and generated tokens alike; `apply_steering` attaches the hooks for the
duration of a ``with`` block and removes them on the way out, exceptions included.

The same steerings can be written as a model-spec option (``hf:bundled?steer=SPEC``,
``bundled?steer=SPEC``); `parse_steer_spec` reads that syntax:

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

import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from personae.errors import InputError, RunError
from personae.steer.vector import PersonaVector, load_vector

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# One item, anchored where the previous one ended: FILE is the shortest text that lets the
# rest of the item (":LAYER:COEF[r]" then "," or the end) match, so paths may hold ":" or ",".
_ITEM = re.compile(rf"(?P<file>.+?):(?P<layer>\d+|all):(?P<coef>{_NUMBER})(?P<rel>r?)(?:,|$)")
SPEC_SYNTAX = "FILE:LAYER:COEF[r][,FILE:LAYER:COEF[r]...]"


@dataclass(frozen=True, eq=False)  # holds arrays: compare by identity
class Steering:
    """Add ``coefficient × unit(vector[layer])`` to the output of decoder block ``layer``.

    ``relative=True`` multiplies by ``vector.meta.residual_norms[layer]``, so a coefficient of
    1 is a push as long as the residual stream at that layer typically is. ``normalize=False``
    uses the stored row as it is (llama.cpp control-vector semantics).

    >>> v = PersonaVector.from_array(np.full((2, 4), 2.0, np.float32), trait="t", model="m",
    ...                              position="response_avg", method="mean_diff",
    ...                              residual_norms=[10.0, 20.0])
    >>> Steering(v, 1, 0.5, relative=True).delta().tolist()
    [5.0, 5.0, 5.0, 5.0]
    """

    vector: PersonaVector
    layer: int
    coefficient: float
    relative: bool = False
    normalize: bool = True

    def __post_init__(self) -> None:
        self.vector.check_layer(self.layer)
        if self.relative:
            norms = self.vector.meta.residual_norms
            if not norms:
                raise InputError(f"the {self.vector.meta.trait!r} vector has no residual norms "
                                 "(re-extract it with personae, or use an absolute coefficient)")
            if len(norms) != self.vector.n_layers:
                raise InputError(f"the {self.vector.meta.trait!r} vector has "
                                 f"{len(norms)} residual norms for {self.vector.n_layers} layers")

    @property
    def scale(self) -> float:
        """The length of the push (for a unit direction): coefficient × residual norm if
        relative, else the coefficient."""
        if self.relative:
            assert self.vector.meta.residual_norms is not None
            return self.coefficient * self.vector.meta.residual_norms[self.layer]
        return self.coefficient

    def delta(self) -> np.ndarray:
        """What is added to every position of block ``layer``'s output (float32, hidden)."""
        row = self.vector.unit(self.layer) if self.normalize else self.vector.at(self.layer)
        return (np.float32(self.scale) * row).astype(np.float32)

    @property
    def label(self) -> str:
        rel = "r" if self.relative else ""
        return f"{self.vector.meta.trait}@{self.layer}:{self.coefficient:g}{rel}"


def steerings_for(vector: PersonaVector, layers: int | Sequence[int], coefficient: float, *,
                  relative: bool = False) -> list[Steering]:
    """One `Steering` per layer, all with the same coefficient.

    >>> v = PersonaVector.from_array(np.eye(3, 4, dtype=np.float32), trait="t", model="m",
    ...                              position="response_avg", method="mean_diff")
    >>> [s.layer for s in steerings_for(v, [0, 2], 4.0)]
    [0, 2]
    """
    chosen = [layers] if isinstance(layers, int) else list(layers)
    if not chosen:
        raise InputError("steering needs at least one layer")
    return [Steering(vector, int(layer), float(coefficient), relative) for layer in chosen]


def layer_deltas(steerings: Sequence[Steering]) -> dict[int, np.ndarray]:
    """The total added at each layer (several steerings at one layer add up).

    >>> v = PersonaVector.from_array(np.eye(2, 3, dtype=np.float32), trait="t", model="m",
    ...                              position="response_avg", method="mean_diff")
    >>> layer_deltas([Steering(v, 0, 1.0), Steering(v, 0, 2.0)])[0].tolist()
    [3.0, 0.0, 0.0]
    """
    out: dict[int, np.ndarray] = {}
    for s in steerings:
        d = s.delta()
        out[s.layer] = out[s.layer] + d if s.layer in out else d
    return out


def steering_digest(steerings: Sequence[Steering]) -> str:
    """sha256 of exactly what gets added where: the layers and the float32 deltas.

    It changes with the vector file's content, the coefficient, and (for relative
    coefficients) the residual norms in the sidecar, so it belongs in every cache key.

    >>> v = PersonaVector.from_array(np.eye(2, 3, dtype=np.float32), trait="t", model="m",
    ...                              position="response_avg", method="mean_diff")
    >>> steering_digest([Steering(v, 0, 1.0)]) == steering_digest([Steering(v, 0, 2.0)])
    False
    """
    h = hashlib.sha256()
    for layer, delta in sorted(layer_deltas(steerings).items()):
        h.update(f"{layer}:{delta.shape[0]}:".encode())
        h.update(np.ascontiguousarray(delta, dtype="<f4").tobytes())
    return h.hexdigest()


def steering_identity(steerings: Sequence[Steering]) -> str:
    """The suffix a steered model adds to its identity ("" when there is no steering).

    >>> v = PersonaVector.from_array(np.eye(2, 3, dtype=np.float32), trait="t", model="m",
    ...                              position="response_avg", method="mean_diff")
    >>> steering_identity([Steering(v, 1, 4.0)])[:13]
    '+steer[t@1:4]'
    """
    if not steerings:
        return ""
    labels = ",".join(s.label for s in steerings[:4])
    if len(steerings) > 4:
        labels += f",+{len(steerings) - 4}"
    return f"+steer[{labels}]:{steering_digest(steerings)[:16]}"


# --- transformers models ------------------------------------------------------------------


def decoder_layers(model: Any) -> Sequence[Any]:
    """The list of decoder blocks of a transformers causal LM (``model.model.layers`` for
    llama-style models), found without knowing the architecture's attribute names."""
    import torch

    base = model.get_decoder() if hasattr(model, "get_decoder") else None
    candidates = [getattr(base, "layers", None), getattr(getattr(model, "model", None), "layers",
                                                                 None),
                  getattr(model, "layers", None),
                  getattr(getattr(model, "transformer", None), "h", None),
                  getattr(getattr(model, "gpt_neox", None), "layers", None)]
    for c in candidates:
        if isinstance(c, torch.nn.ModuleList) and len(c) > 0:
            return c
    # Unknown layout: the one ModuleList as long as the config says the model is deep.
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n]
    if n and len(lists) == 1:
        return lists[0]
    raise RunError(f"cannot find the decoder layers of {type(model).__name__} to steer")


def _model_hidden(model: Any) -> int | None:
    config = getattr(model, "config", None)
    getter = getattr(config, "get_text_config", None)
    text = getter() if callable(getter) else config
    return getattr(text, "hidden_size", None)


def _make_hook(delta: Any) -> Any:
    def add_delta(module: Any, args: Any, output: Any) -> Any:
        # transformers 5.x decoder layers return a tensor, 4.x a tuple (hidden, ...).
        if isinstance(output, tuple):
            return (output[0] + delta, *output[1:])
        return output + delta

    return add_delta


@contextmanager
def apply_steering(model: Any, steerings: Sequence[Steering]) -> Iterator[None]:
    """Steer a transformers model inside a ``with`` block (hooks removed on exit).

    The deltas are converted to the model's dtype and device once, here; each hook is one
    broadcast add. Hooks are put first, so hooks that record hidden states (transformers'
    ``output_hidden_states``) see the steered output.
    """
    if not steerings:
        yield
        return
    layers = decoder_layers(model)
    hidden = _model_hidden(model)
    for s in steerings:
        if hidden is not None and s.vector.hidden != hidden:
            raise InputError(f"the {s.vector.meta.trait!r} vector has width {s.vector.hidden}, "
                             f"the model's hidden size is {hidden}")
        if s.layer >= len(layers):
            raise InputError(f"cannot steer layer {s.layer}: the model has layers "
                             f"0..{len(layers) - 1}")
    import torch

    handles = []
    try:
        for layer, delta in layer_deltas(steerings).items():
            block = layers[layer]
            ref = next(block.parameters())
            tensor = torch.from_numpy(delta).to(device=ref.device, dtype=ref.dtype)
            handles.append(block.register_forward_hook(_make_hook(tensor), prepend=True))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def steering(torch_model: Any, vector: PersonaVector, layers: int | Sequence[int],
             coefficient: float, *, relative: bool = False) -> Iterator[list[Steering]]:
    """Add ``coefficient × unit vector`` at ``layers`` of a transformers model while inside.

    This patches the torch module itself: a personae `HFModel` built on it keeps its
    unsteered identity, so its response cache would file steered replies under unsteered
    keys, and other users of the module see the hooks. With an `HFModel`, prefer
    ``hf.with_steering(steerings_for(vector, layer, coef))`` (or ``?steer=`` in the spec).

    Example (needs the model, so not run here)::

        hf = load_model("hf:bundled")
        with steering(hf.model, load_vector("evil.safetensors"), 12, 4.0):
            reply = asyncio.run(hf.chat(messages, ChatParams(temperature=0)))
    """
    steers = steerings_for(vector, layers, coefficient, relative=relative)
    with apply_steering(torch_model, steers):
        yield steers


# --- the spec-string form -----------------------------------------------------------------


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
        from personae.steer.gguf import load_control_vector

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
