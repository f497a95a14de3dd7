"""Errors that reach the user as one line.

`InputError` means the user gave us something we cannot use (exit 2); `RunError` means a
failure while doing the work (exit 1). Both carry a message that names the input and the
problem, so the CLI prints them without a traceback.
"""

from __future__ import annotations

from pydantic import ValidationError


class PersonaeError(Exception):
    """Base of every error personae raises on purpose."""

    exit_code = 1


class InputError(PersonaeError, ValueError):
    """Bad input or usage: a malformed file, an unknown model spec, an invalid field."""

    exit_code = 2


class RunError(PersonaeError, RuntimeError):
    """A failure while running: a model server that is down, a timeout, a backend error."""

    exit_code = 1


class GateFailed(PersonaeError):
    """A quality gate (``--fail-under``, ``--baseline``/``--max-drop``) failed: the run itself
    worked, its numbers did not pass (exit 3). The message has one line per failed condition."""

    exit_code = 3


class CapabilityError(InputError):
    """A backend was asked for something it cannot do.

    The message names the capability and the backends that have it.
    """


def describe_validation(exc: ValidationError, *, whole: str = "input") -> str:
    """The first problem pydantic found, as ``field.path: message (got value)``, plus how
    many more there are. ``whole`` names the object when the error is not about one field.

    >>> from pydantic import BaseModel, Field
    >>> class M(BaseModel):
    ...     n: int = Field(le=5)
    >>> try:
    ...     M(n=7)
    ... except ValidationError as exc:
    ...     describe_validation(exc)
    'n: Input should be less than or equal to 5 (got 7)'
    """
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or whole
    msg = err["msg"].removeprefix("Value error, ")
    got = ""
    if err["loc"] and err.get("input") is not None and not isinstance(err["input"], dict | list):
        got = f" (got {err['input']!r})"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{loc}: {msg}{got}{more}"
