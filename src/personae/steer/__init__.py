"""Persona vectors on open-weight models: extract, save/load, monitor, steer, sweep.

Load a vector and steer a transformers model with it inside a ``with`` block::

    import asyncio
    from personae.models import ChatParams, Message, load_model
    from personae.steer import load_vector, steering

    hf = load_model("hf:bundled")
    vector = load_vector("extroverted.safetensors")
    with steering(hf.model, vector, 15, 0.25, relative=True):
        reply = asyncio.run(hf.chat([Message(role="user", content="Hi!")],
                                    ChatParams(max_tokens=40, temperature=0)))

>>> from personae.steer import PersonaVector, Steering, load_vector, steering
"""

from personae.models.hooks import apply_steering, steering
from personae.vectors import (
    LAYER_CONVENTION,
    METHODS,
    POSITIONS,
    PersonaVector,
    Steering,
    VectorMeta,
    load_steer_spec,
    load_vector,
    parse_steer_spec,
    steering_identity,
    steerings_for,
)

__all__ = ["LAYER_CONVENTION", "METHODS", "POSITIONS", "PersonaVector", "Steering",
           "VectorMeta", "apply_steering", "load_steer_spec", "load_vector", "parse_steer_spec",
           "steering", "steering_identity", "steerings_for"]
