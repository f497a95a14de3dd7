"""Steering: add ``coefficient × unit vector`` to the output of decoder blocks.

A `Steering` names one vector, one layer and one coefficient: the value that passes between
modules. Each backend applies it itself (forward hooks in `personae.models.hooks` for
transformers models, control-vector buffers in the llama.cpp backend), on decoder block ``L``
(from 0: the personae convention), at every position, prompt and generated tokens alike.

The spec-string form (``hf:bundled?steer=FILE:LAYER:COEF[r]``) is read by
`personae.vectors.spec`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from personae.errors import InputError
from personae.vectors.file import PersonaVector


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
