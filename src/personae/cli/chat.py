"""``personae chat``: talk to a model playing a persona, one-shot or interactive."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from personae.chat import ChatSession
from personae.cli.options import DEFAULT_PERSONA, FormatOpt, ModelOpt, TemplateOpt, pick_persona
from personae.errors import InputError, RunError
from personae.persona.render import load_template


def chat(
    message: Annotated[list[str] | None, typer.Argument(help="The message. Omit it to read "
                                                        "stdin, or to chat on a terminal.")] = None,
    persona: Annotated[str, typer.Option("--persona", "-p", help="Persona file, 'sample:ID', "
                                         "or 'personagym:ID'.")] = DEFAULT_PERSONA,
    persona_id: Annotated[str | None, typer.Option(help="Which persona in a file of many.")] = None,
    model: ModelOpt = "bundled",
    template: TemplateOpt = "card",
    max_tokens: Annotated[int, typer.Option(min=1, max=32768,
                                            help="Reply length limit in tokens.")] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.7,
    seed: Annotated[int, typer.Option(min=0, max=2**31 - 1,
                                      help="Sampling seed (part of the cache key).")] = 0,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Always call the model.")] = False,
    api_key_env: Annotated[str | None, typer.Option(help="Environment variable holding the API "
                                                    "key for openai: models.")] = None,
    persona_format: FormatOpt = "auto",
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per model call.")] = 300.0,
) -> None:
    """Talk to a model playing a persona. One-shot with a message; interactive on a terminal."""
    who = pick_persona(persona, persona_id, persona_format)
    session = ChatSession.open(
        who, model=model, template=load_template(template), max_tokens=max_tokens,
        temperature=temperature, seed=seed, use_cache=not no_cache, api_key_env=api_key_env,
        timeout_s=timeout,
    )
    if message:
        text: str | None = " ".join(message)
    elif not sys.stdin.isatty():
        text = sys.stdin.read()
    else:
        text = None

    # One event loop for the whole session, so HTTP connections are reused between turns;
    # input() runs on the main thread, so Ctrl-C at the prompt ends the session at once.
    with asyncio.Runner() as aio:
        try:
            if text is None:
                _interactive(session, aio)
            elif not text.strip():
                raise InputError("the message is empty")
            else:
                typer.echo(aio.run(session.send(text)))
        finally:
            aio.run(session.aclose())


CHAT_HELP = """\
/help    this list
/reset   forget the conversation so far (the persona stays)
/exit    quit (also /quit, Ctrl-D)
Anything else is said to the persona; Ctrl-C quits at once."""


def _interactive(session: ChatSession, aio: asyncio.Runner) -> None:
    err = Console(stderr=True, highlight=False)
    name = session.persona.name or session.persona.id
    err.print(f"[bold]Chatting with {escape(name)}[/] on {escape(session.model_spec)}. "
              "/help lists the commands; Ctrl-D or /exit quits.")
    while True:
        try:
            text = input("you> ")
        except EOFError:
            err.print()
            return
        command = text.strip()
        if command in ("/exit", "/quit"):
            return
        if command == "/reset":
            session.reset()
            err.print("(history forgotten; the persona stays)")
            continue
        if command in ("/help", "/?"):
            err.print(CHAT_HELP)
            continue
        if command.startswith("/") and " " not in command:
            err.print(f"unknown command {escape(command)}; /help lists the commands")
            continue
        if command:
            try:
                print(f"{name}> {aio.run(session.send(text))}", flush=True)
            except RunError as exc:  # keep the conversation; the user may retry
                err.print(f"[red]personae: error: {exc}[/]")
