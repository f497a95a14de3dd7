"""Persona-vector data: vector files (.safetensors + JSON sidecar, persona_vectors .pt,
llama.cpp GGUF control vectors), the `Steering` value that passes between modules, and the
``FILE:LAYER:COEF[r]`` spec parser. numpy and safetensors only (torch and gguf are imported
only to read or write their own file formats), so every layer above can use it.

>>> import numpy as np
>>> v = PersonaVector.from_array(np.eye(2, 3, dtype=np.float32), trait="t", model="m",
...                              position="response_avg", method="mean_diff")
>>> Steering(v, 1, 2.0).delta().tolist()
[0.0, 2.0, 0.0]
"""

from personae.vectors.file import (
    LAYER_CONVENTION,
    METHODS,
    POSITIONS,
    PersonaVector,
    VectorMeta,
    file_digest,
    load_vector,
)
from personae.vectors.spec import SPEC_SYNTAX, load_steer_spec, parse_steer_spec
from personae.vectors.steering import (
    Steering,
    layer_deltas,
    steering_digest,
    steering_identity,
    steerings_for,
)

__all__ = ["LAYER_CONVENTION", "METHODS", "POSITIONS", "SPEC_SYNTAX", "PersonaVector",
           "Steering", "VectorMeta", "file_digest", "layer_deltas", "load_steer_spec",
           "load_vector", "parse_steer_spec", "steering_digest", "steering_identity",
           "steerings_for"]
