"""What several commands share: option types, the default persona, picking one persona."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from personae.errors import InputError
from personae.persona import BUILTIN_TEMPLATES, FORMATS, Persona
from personae.persona.sample import id_list, resolve_personas
from personae.runtime.spine import RunResult

DEFAULT_PERSONA = "sample:chinedu-enugu-mechanic"
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model spec: bundled, hf:bundled, "
                                       "hf:PATH, llamacpp:PATH.gguf, openai:MODEL[@URL], "
                                       "scripted:FILE.")]
FormatOpt = Annotated[str, typer.Option("--format", help="Persona file format: auto, "
                                        + ", ".join(FORMATS) + ".")]
TemplateOpt = Annotated[str, typer.Option("--template", "-t", help="Built-in template ("
                                          + ", ".join(BUILTIN_TEMPLATES) + ") or a Jinja2 file.")]


def run_dir_option(default: str) -> Any:
    """The ``--out`` option of a run command, naming its default directory under
    ``personae-runs/``.

    >>> run_dir_option("eval-<settings digest>").__metadata__[0].help
    'Run directory (default: personae-runs/eval-<settings digest>). Re-running with the same settings resumes it.'
    """
    return Annotated[Path | None, typer.Option(
        "--out", "-o", help=f"Run directory (default: personae-runs/{default}). Re-running "
        "with the same settings resumes it.")]


def by_id(personas: list[Persona], ref: str, persona_id: str) -> Persona:
    for p in personas:
        if p.id == persona_id:
            return p
    raise InputError(f"{ref}: no persona with id {persona_id!r}; {id_list(personas, ref)}")


def pick_persona(ref: str, persona_id: str | None, fmt: str) -> Persona:
    personas = resolve_personas(ref, format=fmt)
    if persona_id:
        return by_id(personas, ref, persona_id)
    if len(personas) > 1:
        raise InputError(f"{ref} holds {len(personas)} personas; choose one with --persona-id "
                         f"({id_list(personas, ref)})")
    return personas[0]


def csv(value: str | None) -> list[str] | None:
    """A comma-separated option as a list (None: not given)."""
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def finish_run(result: RunResult, calls: str, *, failed: str = "model calls") -> None:
    """The end of a run command: the terminal summary (less the warnings shown when the run
    started), ``report.html`` rendered, how many calls, the report's path on stdout (so it
    pipes), and exit 1 when some calls failed, saying that the same command goes on from
    there."""
    from personae.report import report_for
    from personae.report.console import print_summary

    print_summary(result.summary, skip_warnings=result.warnings)
    report = report_for(result.summary, result.run_dir)
    others = sorted(p.name for p in result.run_dir.iterdir()
                    if p.is_file() and p.suffix in (".json", ".jsonl", ".md", ".svg"))
    typer.echo(f"{calls}; {', '.join(others)} beside the report:", err=True)
    typer.echo(str(report))
    if result.failures:
        typer.echo(f"personae: error: {len(result.failures)} {failed} failed (first: "
                   f"{result.failures[0]}); re-run the same command to resume", err=True)
        raise typer.Exit(1)
