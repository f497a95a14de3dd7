"""``personae personas``: validate, list, render and convert persona files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from personae.cli.options import FormatOpt, TemplateOpt, by_id
from personae.errors import InputError
from personae.persona.render import load_template
from personae.persona.sample import resolve_personas

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                  help="Validate, list, render and convert persona files.")


@app.command("validate")
def personas_validate(
    files: Annotated[list[str], typer.Argument(help="Persona files, or bundled sets "
                                               "('sample', 'personagym', SET:ID).")],
    template: TemplateOpt = "card",
    persona_format: FormatOpt = "auto",
) -> None:
    """Check persona files: one line per file, plus a line per persona naming the fields the
    template leaves out of the prompt. Exit 2 if any file is invalid."""
    tpl = load_template(template)
    bad = 0
    for f in files:
        try:
            personas = resolve_personas(f, format=persona_format)
        except InputError as exc:
            bad += 1
            typer.echo(f"personae: error: {exc}", err=True)
            continue
        typer.echo(f"{f}: {len(personas)} persona{'s' if len(personas) != 1 else ''} OK")
        for p in personas:
            unused = tpl.unused_fields(p)
            if unused:
                typer.echo(f"{f}: {p.id}: not used by template {template}: "
                           + ", ".join(unused))
    if bad:
        raise typer.Exit(2)


@app.command("list")
def personas_list(
    ref: Annotated[str | None, typer.Argument(
        help="A bundled set ('sample', 'personagym') or a persona file; omit it to list the "
        "bundled sets.")] = None,
    persona_format: FormatOpt = "auto",
) -> None:
    """List the bundled persona sets, or the personas (id, name, description) in one."""
    from personae.persona.sample import BUNDLED_SETS, load_bundled

    table = Table(box=None, pad_edge=False)
    if ref is None:
        for col in ("set", "personas", "use it as"):
            table.add_column(col)
        for name in BUNDLED_SETS:
            table.add_row(name, str(len(load_bundled(name))), f"-p {name} or -p {name}:ID")
    else:
        personas = resolve_personas(ref, format=persona_format)
        # One line per persona: ids and names whole, the description cut to what fits.
        table.add_column("id", no_wrap=True, min_width=max(len(p.id) for p in personas))
        table.add_column("name", no_wrap=True,
                         min_width=max(len(p.name or "") for p in personas))
        table.add_column("description", no_wrap=True, overflow="ellipsis")
        for p in personas:
            table.add_row(escape(p.id), escape(p.name or ""), escape(p.describe()))
    Console().print(table)


@app.command("render")
def personas_render(
    file: Annotated[str, typer.Argument(help="Persona file, 'sample' or 'sample:ID'.")],
    template: TemplateOpt = "card",
    persona_id: Annotated[str | None, typer.Option(help="Only this persona.")] = None,
    persona_format: FormatOpt = "auto",
) -> None:
    """Print the system prompt for each persona in FILE."""
    tpl = load_template(template)
    personas = resolve_personas(file, format=persona_format)
    if persona_id:
        personas = [by_id(personas, file, persona_id)]
    for i, p in enumerate(personas):
        if len(personas) > 1:
            typer.echo(f"{'' if i == 0 else chr(10)}### {p.id}")
        typer.echo(tpl.render(p))


@app.command("convert")
def personas_convert(
    source: Annotated[str, typer.Argument(help="Input persona file (any supported format).")],
    target: Annotated[Path, typer.Argument(help="Output file: .yaml, .json or .jsonl.")],
    persona_format: FormatOpt = "auto",
) -> None:
    """Convert personas between formats (e.g. TinyTroupe JSON to personae YAML)."""
    from personae.persona import save_personas

    personas = resolve_personas(source, format=persona_format)
    save_personas(personas, target)
    typer.echo(f"wrote {len(personas)} personas to {target}", err=True)
