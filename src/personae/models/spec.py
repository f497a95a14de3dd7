"""Model spec strings and the factory that turns them into backends.

    bundled                              the bundled SmolLM2-135M-Instruct on llama.cpp
    llamacpp:PATH.gguf                   any GGUF file on llama.cpp
    hf:bundled | hf:PATH                 transformers (white-box: hidden states, batching)
    openai:MODEL[@BASE_URL]              any OpenAI-compatible server (vLLM, llama.cpp, Ollama...)
    scripted:FILE                        deterministic replies from a YAML/JSON file (tests)

Options follow a ``?``: ``bundled?n_ctx=8192``, ``openai:qwen@http://127.0.0.1:8000/v1?concurrency=32``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict

from personae.errors import InputError
from personae.models.base import Model
from personae.models.registry import SPEC_FORMS, backend

BACKENDS = ("bundled", "llamacpp", "hf", "openai", "scripted")
_OPENAI_RE = re.compile(r"^(?P<model>[^@]+?)(?:@(?P<url>https?://\S+))?$")


class ModelSpec(BaseModel):
    """A parsed model spec string."""

    model_config = ConfigDict(frozen=True)

    raw: str
    backend: str  # llamacpp | hf | openai | scripted
    target: str  # path, model name, or "bundled"
    base_url: str | None = None
    options: dict[str, str] = {}


def parse_model_spec(spec: str) -> ModelSpec:
    """Parse a spec string.

    >>> parse_model_spec("openai:qwen@http://127.0.0.1:8000/v1").base_url
    'http://127.0.0.1:8000/v1'
    >>> parse_model_spec("bundled").backend
    'llamacpp'
    """
    raw = spec.strip()
    body, _, query = raw.partition("?")
    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise InputError(
            f"model spec {spec!r}: options after '?' must be key=value pairs") from None
    head, sep, rest = body.partition(":")
    if body == "bundled":
        return ModelSpec(raw=raw, backend="llamacpp", target="bundled", options=options)
    if sep and head in ("llamacpp", "hf", "scripted") and rest:
        return ModelSpec(raw=raw, backend=head, target=rest, options=options)
    if sep and head == "openai" and rest:
        m = _OPENAI_RE.match(rest)
        if m:
            return ModelSpec(raw=raw, backend="openai", target=m["model"], base_url=m["url"],
                             options=options)
    raise InputError(f"unknown model spec {spec!r}; expected one of: " + ", ".join(SPEC_FORMS))


def load_model(spec: str | ModelSpec, **overrides: Any) -> Model:
    """A backend for a spec string. Loading of weights is deferred to the first call.

    >>> load_model("bundled").backend  # weights load on the first call, not here
    'llamacpp'
    """
    parsed = spec if isinstance(spec, ModelSpec) else parse_model_spec(spec)
    model: Model = backend(parsed.backend).model_class().from_spec(
        parsed, **{**parsed.options, **overrides})
    return model


def is_bundled(spec: str, model: Model | None = None) -> bool:
    """Whether ``spec`` (or the loaded ``model``) is the bundled SmolLM2-135M: the one
    check behind every "this is the tiny bundled model" warning.

    >>> is_bundled("hf:bundled"), is_bundled("openai:qwen@http://127.0.0.1:8000/v1")
    (True, False)
    """
    try:
        if parse_model_spec(spec).target == "bundled":
            return True
    except InputError:
        return False
    return model is not None and "smollm2-135m" in model.identity.lower()
