"""What every kind's terminal summary shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape


def print_warnings(summary: Mapping[str, Any], console: Console,
                   skip: Sequence[str] = ()) -> None:
    """The summary's warnings in red, but those in ``skip`` (already shown at the start)."""
    for w in summary.get("warnings", []):
        if w not in skip:
            console.print(f"[bold red]! {escape(str(w))}[/]")
