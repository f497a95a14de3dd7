"""Model backends behind one async protocol, and the spec strings that pick them."""

from personae.models.base import (
    Capability,
    ChatParams,
    ChoiceScores,
    Completion,
    Message,
    Model,
    TokenLogprob,
    TransientModelError,
    request_key,
)
from personae.models.bundled import bundled_gguf_path
from personae.models.scripted import ScriptedModel
from personae.models.spec import ModelSpec, load_model, parse_model_spec

__all__ = [
    "Capability", "ChatParams", "ChoiceScores", "Completion", "Message", "Model", "ModelSpec",
    "ScriptedModel", "TokenLogprob", "TransientModelError", "bundled_gguf_path", "load_model",
    "parse_model_spec", "request_key",
]
