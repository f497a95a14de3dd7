"""The terminal summary of a run of any kind: warnings, then the kind's few tables, on
stderr (stdout carries only the report's path, so it pipes).

Run strings (persona names, warnings) are escaped: rich would read "[...]" in them as
markup, and a stray "[/]" raises.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from personae.report.simulate_console import print_sim_summary
from personae.report.survey_console import print_survey_summary
from personae.report.sweep import format_table
from personae.report.terminal import print_warnings
from personae.stats import MetricValue


def print_summary(summary: Mapping[str, Any], *, console: Console | None = None,
                  skip_warnings: Sequence[str] = ()) -> None:
    """The terminal summary for ``summary``, by its kind.

    >>> import io
    >>> out = Console(file=io.StringIO(), width=80)
    >>> print_summary({"kind": "eval", "warnings": ["the judge is tiny"]}, console=out)
    >>> out.file.getvalue().strip()
    '! the judge is tiny'
    """
    printers: dict[str, Callable[..., None]] = {
        "eval": print_eval_summary, "survey": print_survey_summary,
        "simulate": print_sim_summary, "sweep": print_sweep_summary}
    printer = printers.get(str(summary.get("kind")), print_eval_summary)
    printer(summary, console=console or Console(stderr=True), skip_warnings=skip_warnings)


def print_sweep_summary(summary: Mapping[str, Any], *, console: Console | None = None,
                        skip_warnings: Sequence[str] = ()) -> None:
    """Warnings, then the per-coefficient Markdown table and one verdict per measure."""
    console = console or Console(stderr=True)
    print_warnings(summary, console, skip_warnings)
    console.out(format_table(summary), highlight=False)  # Markdown: not wrapped or styled


def print_eval_summary(summary: Mapping[str, Any], *, console: Console | None = None,
                       skip_warnings: Sequence[str] = ()) -> None:
    """Warnings, the PersonaScore table by condition, deltas, C-scores and the judges'
    reliability verdict."""
    console = console or Console(stderr=True)
    print_warnings(summary, console, skip_warnings)
    mv = lambda d: str(MetricValue(**d)) if d else "—"
    fid = summary.get("fidelity")
    if fid:
        table = Table(title="PersonaScore (1–5, mean [95% CI] n)")
        table.add_column("task")
        conds = list(fid["by_condition"])
        for c in conds:
            table.add_column(c)
        for task in fid["tasks"]:
            table.add_row(task, *(mv(fid["by_condition"][c]["tasks"].get(task)) for c in conds))
        table.add_row("[bold]PersonaScore", *(mv(fid["by_condition"][c]["persona_score"])
                                              for c in conds))
        console.print(table)
        for control, d in fid["deltas"].items():
            console.print(f"persona − {control}: {mv(d['persona_score'])}")
    cons = summary.get("consistency")
    if cons:
        console.print("C-score: " + ", ".join(f"{c} {mv(v)}"
                                                for c, v in cons["by_condition"].items()))
    rel = summary.get("reliability")
    if rel:
        colour = "green" if rel["reliable"] else "bold red"
        console.print(f"[{colour}]judge reliability: {rel['verdict']}[/]")
