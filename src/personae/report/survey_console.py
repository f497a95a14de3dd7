"""The terminal summary of a ``personae survey`` run: a few rich tables on stderr.

Run strings (persona names, warnings, notes) are escaped: rich would read "[...]" in them
as markup, and a stray "[/]" raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from personae.report.html import fmt_num
from personae.report.terminal import print_warnings


def print_survey_summary(summary: Mapping[str, Any], *, console: Console | None = None,
                         skip_warnings: Sequence[str] = ()) -> None:
    """Warnings, domain scores per administration, declared vs measured traits when
    personas declare them, and the shaping table if any."""
    console = console or Console(stderr=True)
    print_warnings(summary, console, skip_warnings)
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
            table.add_row(escape(a["label"]), escape(a["variant"]), *cells,
                          fmt_num(a["unparsable"]["value"]), *extra)
        console.print(table)
    declared = summary.get("declared_vs_measured")
    if declared:
        print_declared_vs_measured(declared, domains, console=console)
    shaping = summary.get("shaping")
    if shaping:
        table = Table(title="Trait shaping: Spearman's rho, prompted level vs measured score")
        for col in ("domain", "variant", "rho", "95% CI", "n"):
            table.add_column(col, justify="left" if col in ("domain", "variant") else "right")
        for r in shaping["rows"]:
            ci = (f"[{fmt_num(r['ci_low'])}, {fmt_num(r['ci_high'])}]"
                  if r.get("ci_low") is not None else "—")
            table.add_row(escape(r["name"]), escape(r["variant"]), fmt_num(r["rho"]), ci,
                          str(r["n"]))
        console.print(table)


def _signed(x: Any) -> str:
    # + 0.0 turns the -0.0 that rounding leaves of a tiny negative into 0.0: "+0.00".
    return "—" if x is None else f"{round(x, 2) + 0.0:+.2f}"


def print_declared_vs_measured(section: Mapping[str, Any], domains: Sequence[tuple[str, str]],
                               *, console: Console) -> None:
    """Two tables: declared → measured (difference) per persona and domain; then per domain
    and pooled, Pearson's r with its CI and the mean (absolute) difference.

    >>> import io
    >>> c = Console(width=100, record=True, file=io.StringIO())
    >>> mv = {"value": 4.0, "ci_low": 3.5, "ci_high": 4.5, "n": 2}
    >>> print_declared_vs_measured({"variant": "base", "personas": [{"label": "Ana",
    ...     "domains": {"E": {"declared": 3.5, "measured": mv, "difference": 0.5}}}],
    ...     "by_domain": [], "pooled": {}}, [("E", "Extraversion")], console=c)
    >>> "3.5 → 4.00 (+0.50)" in c.export_text()
    True
    """
    variant = escape(str(section.get("variant")))
    table = Table(title="Declared vs measured traits, on the instrument's scale: declared → "
                  f"measured (measured − declared); {variant} variant, CIs in the report")
    table.add_column("persona")
    for d, _ in domains:
        table.add_column(d, justify="right")
    for row in section.get("personas", []):
        cells = []
        for d, _ in domains:
            cell = (row.get("domains") or {}).get(d) or {}
            declared = cell.get("declared")
            measured = (cell.get("measured") or {}).get("value")
            if declared is None and measured is None:
                cells.append("—")
                continue
            text = f"{'—' if declared is None else f'{declared:g}'} → {fmt_num(measured)}"
            if cell.get("difference") is not None:
                text += f" ({_signed(cell['difference'])})"
            cells.append(text)
        table.add_row(escape(str(row.get("label"))), *cells)
    console.print(table)
    table = Table(title="Declared vs measured across personas: Pearson's r (95% CI), mean "
                  "difference and mean |difference|")
    for col in ("domain", "r", "95% CI", "n", "mean diff", "mean |diff|", "note"):
        table.add_column(col, justify="left" if col in ("domain", "note") else "right")
    # Domain ids, as in the tables above: the names would squeeze the note column.
    rows = [(str(r.get("domain")), r) for r in section.get("by_domain", [])]
    if section.get("pooled"):
        rows.append(("all (pooled)", section["pooled"]))
    for name, r in rows:
        c = r.get("correlation") or {}
        ci = (f"[{fmt_num(c['ci_low'])}, {fmt_num(c['ci_high'])}]"
              if c.get("ci_low") is not None else "—")
        table.add_row(escape(name), fmt_num(c.get("r")), ci, str(r.get("n", "—")),
                      _signed((r.get("mean_difference") or {}).get("value")),
                      fmt_num((r.get("mean_abs_difference") or {}).get("value")),
                      escape(c.get("reason") or ""))
    console.print(table)
