"""The ``personae`` command: the app with every command group, and the entry point that
turns every error into one line and an exit code.

Exit codes: 0 ok, 2 bad input or usage, 1 any other failure, 3 a quality gate failed
(``eval --fail-under``/``--baseline``), 130 interrupted. Errors the user
can fix print one line to stderr and no traceback (``--debug`` shows one).
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer

from personae import __version__
from personae.cli import chat, evaluation, export, models, personas, simulate, steer, survey
from personae.errors import PersonaeError

# Recent typer vendors its own copy of click: take the exception classes from wherever typer's
# come from, so usage errors are recognised with either layout.
_click = sys.modules[typer.BadParameter.__module__]

# Help texts are plain text: spec syntax such as openai:MODEL[@URL] must not be read as rich
# markup (which drops anything in brackets).
app = typer.Typer(
    name="personae", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="LLM personas: specify, run, measure. Offline by default (bundled SmolLM2-135M).",
)
app.command()(chat.chat)
app.command("eval")(evaluation.eval_)
app.command()(survey.survey)
app.command()(simulate.simulate)
app.command()(evaluation.report)
app.command()(evaluation.rescore)
app.command()(export.export)
app.command()(models.models)
app.add_typer(personas.app, name="personas")
app.add_typer(steer.app, name="steer")


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


# Commands whose work is in a run store: after Ctrl-C the same command goes on from there.
RESUMABLE = (["eval"], ["survey"], ["simulate"], ["rescore"], ["steer", "extract"],
             ["steer", "sweep"])


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn every error into one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    words = [a for a in args if not a.startswith("-")][:2]
    interrupted = "personae: interrupted" + (
        "; re-run the same command to resume" if words[:1] in RESUMABLE or words in RESUMABLE
        else "")
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="personae", standalone_mode=False)
        code = int(result) if isinstance(result, int) else 0
        if code == 130:  # typer turns Ctrl-C into a silent exit 130
            typer.echo("\n" + interrupted, err=True)
        return code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo(interrupted, err=True)
        return 130
    except _click.UsageError as exc:
        if not exc.format_message():  # bare `personae`/`personae personas`: help was printed
            return 0
        hint = f" (see: personae {exc.ctx.command_path.partition(' ')[2]} --help)".replace(
            "  --help", " --help") if exc.ctx else ""
        typer.echo(f"personae: usage error: {exc.format_message()}{hint}", err=True)
        return 2
    except _click.ClickException as exc:
        typer.echo(f"personae: error: {exc.format_message()}", err=True)
        return 2
    except PersonaeError as exc:
        if debug:
            traceback.print_exc()
        typer.echo(f"personae: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo(interrupted, err=True)
        return 130
    except Exception as exc:  # a bug: say so in one line, keep the traceback for --debug
        if debug:
            traceback.print_exc()
            return 1
        first = str(exc).splitlines()[0] if str(exc) else ""
        typer.echo(f"personae: internal error: {type(exc).__name__}: {first} "
                   "(rerun with --debug for a traceback)", err=True)
        return 1


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
