"""The terminal summary of a simulation run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from personae.report.terminal import print_warnings
from personae.stats import MetricValue


def print_sim_summary(summary: Mapping[str, Any], *, console: Console | None = None,
                      skip_warnings: Sequence[str] = ()) -> None:
    """Warnings, stop reasons, then per agent: each metric's slope per turn and the first
    turn past its threshold."""
    console = console or Console(stderr=True)
    print_warnings(summary, console, skip_warnings)
    run = summary.get("run", {})
    reasons = ", ".join(f"{k} {v}" for k, v in (run.get("stop_reasons") or {}).items())
    console.print(f"{run.get('counts', {}).get('turns', 0)} turns in "
                  f"{run.get('n_conversations', 0)} conversations; stopped by: {reasons}")
    print_transcript(summary, console=console)
    labels = {m["id"]: m["label"] for m in summary.get("metrics", [])}
    for g in summary.get("groups", []):
        table = Table(title=f"{g['label']}: drift over its turns")
        table.add_column("metric")
        table.add_column("slope per turn [95% CI]")
        table.add_column("trend")
        table.add_column("first turn past threshold")
        for m, d in g["metrics"].items():
            s = d["slope"]
            slope = str(MetricValue(value=s["value"], ci_low=s["ci_low"], ci_high=s["ci_high"],
                                    n=s["n"]))
            fp = d["first_past"]  # None: the metric has no threshold
            past = ("—" if fp is None else
                    f"{fp['median']:g} (median; {fp['n_crossed']} of {fp['n']})"
                    if fp["median"] is not None else f"never (0 of {fp['n']})")
            table.add_row(labels.get(m, m), slope, s.get("sign", ""), past)
        console.print(table)
        fo = g["first_out_of_persona"]
        console.print("first out-of-persona turn: " + (
            f"{fo['median']:g} (median; {fo['n_crossed']} of {fo['n']} conversations)"
            if fo["median"] is not None else f"none in {fo['n']} conversation(s)"))


def print_transcript(summary: Mapping[str, Any], *, console: Console, turns: int = 6,
                     width: int = 110) -> None:
    """The first conversation's first ``turns`` turns, one line each (the whole of every
    conversation is in transcripts.jsonl and the report), so the user sees what was said."""
    conversations = summary.get("conversations") or []
    if not conversations or not conversations[0]["turns"]:
        return
    conv = conversations[0]
    more = len(conversations) - 1
    console.print(f"[bold]conversation {escape(conv['id'])}[/] ({conv['n_turns']} turns, "
                  f"stopped by {conv['stop_reason']}"
                  + (f"; {more} more in transcripts.jsonl" if more else "") + "):")
    for t in conv["turns"][:turns]:
        text = " ".join(t["text"].split())
        if len(text) > width:
            text = text[: width - 1] + "…"
        console.print(f"  [bold]{escape(t['name'] or t['speaker'])}:[/] {escape(text)}",
                      highlight=False)
    if conv["n_turns"] > turns:
        console.print(f"  … {conv['n_turns'] - turns} more turns")
