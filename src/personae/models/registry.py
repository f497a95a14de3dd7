"""The model backends, one entry each: how a spec picks one, what it can do, what it needs
installed. Loading (`personae.models.spec.load_model`), capability errors and the
``personae models`` table all read this one table.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

from personae.errors import InputError
from personae.models.capability import Capability

_SCORING = frozenset({Capability.CHAT, Capability.LOGPROBS, Capability.SCORE_CHOICES})


@dataclass(frozen=True)
class Backend:
    """One backend. Its class is imported only when it is used: torch, llama.cpp and the
    openai client are heavy, and optional."""

    name: str
    spec_forms: tuple[str, ...]
    module: str
    class_name: str
    requires: str  # the package that must be importable
    capabilities: frozenset[Capability]
    steering: str | None = None  # how it steers; None: it cannot
    first_steerable_block: int = 0

    def model_class(self) -> Any:
        """The backend's class (a `personae.models.base.BaseBackend`)."""
        return getattr(importlib.import_module(self.module), self.class_name)

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.requires) is not None


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("llamacpp", ("bundled", "llamacpp:PATH.gguf"), "personae.models.llamacpp",
            "LlamaCppModel", "llama_cpp", _SCORING | {Capability.STEERING},
            steering="control vectors", first_steerable_block=1),  # its buffers start at block 1
    Backend("hf", ("hf:bundled", "hf:PATH"), "personae.models.hf", "HFModel", "transformers",
            _SCORING | {Capability.HIDDEN_STATES, Capability.STEERING, Capability.BATCH},
            steering="forward hooks"),
    Backend("openai", ("openai:MODEL[@BASE_URL]",), "personae.models.openai_compat",
            "OpenAIModel", "openai", _SCORING),
    Backend("scripted", ("scripted:FILE",), "personae.models.scripted", "ScriptedModel",
            "yaml", frozenset({Capability.CHAT, Capability.SCORE_CHOICES, Capability.BATCH})),
)}
SPEC_FORMS = tuple(form for b in BACKENDS.values() for form in b.spec_forms)


def backend(name: str) -> Backend:
    """The backend called ``name``.

    >>> backend("hf").steering, Capability.STEERING in backend("openai").capabilities
    ('forward hooks', False)
    """
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}; one of: {', '.join(BACKENDS)}")
    return BACKENDS[name]


def backends_with(capability: Capability) -> list[str]:
    """The names of the backends that have ``capability``.

    >>> backends_with(Capability.HIDDEN_STATES)
    ['hf']
    """
    return [name for name, b in BACKENDS.items() if capability in b.capabilities]
