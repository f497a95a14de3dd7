"""Typed backend options from spec strings (``bundled?n_ctx=8192``) or keyword arguments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from personae.errors import InputError, describe_validation

T = TypeVar("T", bound=BaseModel)


def parse_options(cls: type[T], backend: str, options: Mapping[str, Any]) -> T:
    """Validate options against a backend's option model; unknown keys are an input error."""
    unknown = sorted(set(options) - set(cls.model_fields))
    if unknown:
        raise InputError(f"unknown option {unknown[0]!r} for the {backend} backend; known: "
                         + ", ".join(cls.model_fields))
    try:
        return cls.model_validate(dict(options))
    except ValidationError as exc:
        raise InputError(f"{backend} option {describe_validation(exc)}") from None
