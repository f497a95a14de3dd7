"""Errors that reach the user as one line.

`InputError` means the user gave us something we cannot use (exit 2); `RunError` means a
failure while doing the work (exit 1). Both carry a message that names the input and the
problem, so the CLI prints them without a traceback.
"""

from __future__ import annotations


class PersonaeError(Exception):
    """Base of every error personae raises on purpose."""

    exit_code = 1


class InputError(PersonaeError, ValueError):
    """Bad input or usage: a malformed file, an unknown model spec, an invalid field."""

    exit_code = 2


class RunError(PersonaeError, RuntimeError):
    """A failure while running: a model server that is down, a timeout, a backend error."""

    exit_code = 1


class CapabilityError(InputError):
    """A backend was asked for something it cannot do.

    The message names the capability and the backends that have it.
    """
