"""``personae personas``: validate, list, render and convert persona files."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from personae.cli.options import FormatOpt, TemplateOpt, by_id
from personae.errors import InputError
from personae.persona.cards import save_card
from personae.persona.render import load_template
from personae.persona.sample import id_list, resolve_personas
from personae.persona.schema import FLAT_FIELDS, Persona

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                  help="Validate, list, render and convert persona files.")


def _fields_help() -> str:
    """The accepted keys of a persona mapping, for ``validate --help``: the schema's fields,
    then the flat demographic keys, each with its synonyms."""
    synonyms: dict[str, list[str]] = {}
    for key, target in FLAT_FIELDS.items():
        if key != target:
            synonyms.setdefault(target, []).append(key)
    flat = [f"{t} ({', '.join(synonyms[t])})" if t in synonyms else t
            for t in dict.fromkeys(FLAT_FIELDS.values())]
    return ("Accepted persona fields: " + ", ".join(Persona.model_fields) + ". Flat "
            "demographic keys, moved into demographics (synonyms in brackets): "
            + ", ".join(flat) + ". Any other key is an error that names the closest "
            "accepted one; free-form keys go under extra. Files: .yaml, .json, .jsonl, .txt, "
            ".parquet, and character cards (V1, V2, V3) as .json or .png.")


@app.command("validate", help="Check persona files: one line per file, plus a line per "
             "persona naming the fields the template leaves out of the prompt. Exit 2 if "
             "any file is invalid.\n\n" + _fields_help())
def personas_validate(
    files: Annotated[list[str], typer.Argument(help="Persona files, or bundled sets "
                                               "('sample', 'personagym', SET:ID).")],
    template: TemplateOpt = "card",
    persona_format: FormatOpt = "auto",
) -> None:
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


class Target(str, Enum):
    """What ``convert`` writes."""

    auto = "auto"
    card = "card"


@app.command("convert")
def personas_convert(
    source: Annotated[str, typer.Argument(
        help="Input persona file (any supported format, character cards included).")],
    target: Annotated[Path, typer.Argument(
        help="Output file: .yaml, .json, .jsonl or .parquet (personae's nested form), or "
        ".card.json (a Character Card V2).")],
    persona_format: FormatOpt = "auto",
    to: Annotated[Target, typer.Option(
        "--to", help="auto: the format TARGET's suffix names; card: a Character Card V2 "
        "JSON file whatever TARGET is called.")] = Target.auto,
    persona_id: Annotated[str | None, typer.Option(
        help="Only this persona (a card holds one).")] = None,
) -> None:
    """Convert personas between formats: TinyTroupe JSON or a character card PNG to personae
    YAML, a flat persona file to the nested form, a persona to a Character Card V2.

    A persona read from a card becomes the same card again, field for field; for other
    personas, what a card has no field for is written into its description (and kept under
    data.extensions.personae)."""
    from personae.persona import save_personas

    personas = resolve_personas(source, format=persona_format)
    if persona_id:
        personas = [by_id(personas, source, persona_id)]
    if to is Target.card or target.name.lower().endswith(".card.json"):
        if len(personas) > 1:
            raise InputError(f"{source} holds {len(personas)} personas and a character card "
                             f"holds one; choose it with --persona-id ({id_list(personas, source)})")
        save_card(personas[0], target)
        typer.echo(f"wrote {personas[0].id} as a character card (V2) to {target}", err=True)
        return
    save_personas(personas, target)
    typer.echo(f"wrote {len(personas)} persona{'s' if len(personas) != 1 else ''} to {target}",
               err=True)
