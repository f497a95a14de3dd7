"""The terminal summary of a ``personae survey`` run: a few rich tables on stderr."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from personae.report.html import fmt_num


def print_survey_summary(summary: Mapping[str, Any], *, console: Console | None = None,
                         skip_warnings: Sequence[str] = ()) -> None:
    """Warnings, domain scores per administration, and the shaping table if any."""
    console = console or Console(stderr=True)
    for w in summary.get("warnings", []):
        if w not in skip_warnings:
            console.print(f"[bold red]! {w}[/]")
    domains = [(d["id"], d["name"]) for d in summary.get("domains", [])]
    plain = [a for a in summary.get("scores", []) if a.get("shape") is None]
    if plain:
        table = Table(title="Domain means, 1–5 (CIs in the report): "
                      + ", ".join(f"{d} {name}" for d, name in domains))
        table.add_column("respondent")
        table.add_column("variant")
        for d, _ in domains:
            table.add_column(d, justify="right")
        table.add_column("unparsable", justify="right")
        logprob = summary.get("run", {}).get("mode") == "logprob"
        if logprob:
            table.add_column("coverage", justify="right")
        for a in plain:
            cells = [fmt_num((a["domains"].get(d) or {}).get("value")) for d, _ in domains]
            extra = [fmt_num((a.get("coverage") or {}).get("value"))] if logprob else []
            table.add_row(a["label"], a["variant"], *cells, fmt_num(a["unparsable"]["value"]),
                          *extra)
        console.print(table)
    shaping = summary.get("shaping")
    if shaping:
        table = Table(title="Trait shaping: Spearman's rho, prompted level vs measured score")
        for col in ("domain", "variant", "rho", "95% CI", "n"):
            table.add_column(col, justify="left" if col in ("domain", "variant") else "right")
        for r in shaping["rows"]:
            ci = (f"[{fmt_num(r['ci_low'])}, {fmt_num(r['ci_high'])}]"
                  if r.get("ci_low") is not None else "—")
            table.add_row(r["name"], r["variant"], fmt_num(r["rho"]), ci, str(r["n"]))
        console.print(table)
