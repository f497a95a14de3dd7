"""Persona vectors on open-weight models: extract, save/load, monitor, steer, sweep.

>>> from personae.steer import PersonaVector, load_vector
"""

from personae.steer.vector import (
    LAYER_CONVENTION,
    METHODS,
    POSITIONS,
    PersonaVector,
    VectorMeta,
    load_vector,
)

__all__ = ["LAYER_CONVENTION", "METHODS", "POSITIONS", "PersonaVector", "VectorMeta",
           "load_vector"]
