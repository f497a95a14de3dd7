"""``personae steer apply`` and ``personae steer export-gguf``: a typer sub-app.

The commands raise `InputError` / `RunError`; ``personae.cli.main`` (where this app is
mounted) prints them as one line with exit code 2 / 1. This module does not import
``personae.cli`` itself: cli.py imports it to mount it, so that would be circular.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from personae.errors import InputError
from personae.models.base import ChatParams, Message
from personae.models.spec import load_model, parse_model_spec

app = typer.Typer(no_args_is_help=True, help="Steer a model with a persona vector, or export "
                  "one as a llama.cpp control vector.")

VectorOpt = Annotated[Path, typer.Option("--vector", "-v", help="A personae vector "
                                         "(.safetensors + .json), a persona_vectors .pt file, "
                                         "or a llama.cpp control vector (.gguf).")]
STEERABLE = ("hf", "llamacpp")


def steer_option(vector: Path, layers: list[int], coef: float, relative: bool) -> str:
    """The ``steer=`` model option for one vector at several layers.

    >>> steer_option(Path("v.safetensors"), [8, 12], 4.0, True)
    'v.safetensors:8:4r,v.safetensors:12:4r'
    """
    if not layers:
        raise InputError("--layer is required (decoder block, from 0)")
    rel = "r" if relative else ""
    return ",".join(f"{vector}:{layer}:{coef:g}{rel}" for layer in layers)


@app.command("apply")
def apply(
    prompt: Annotated[list[str], typer.Argument(help="The user message.")],
    vector: VectorOpt,
    layer: Annotated[list[int], typer.Option("--layer", "-l", min=0, help="Decoder block to "
                                             "steer, from 0 (repeat for several).")],
    coef: Annotated[float, typer.Option("--coef", "-c", help="Coefficient: the length of the "
                                        "push along the unit vector.")],
    relative: Annotated[bool, typer.Option("--relative", help="Coefficient × the layer's "
                                           "typical residual norm.")] = False,
    model: Annotated[str, typer.Option("--model", "-m", help="hf:bundled, hf:PATH, bundled or "
                                       "llamacpp:PATH.gguf.")] = "hf:bundled",
    system: Annotated[str | None, typer.Option(help="A system prompt.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, max=32768)] = 128,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.0,
    seed: Annotated[int, typer.Option(min=0, max=2**31 - 1)] = 0,
) -> None:
    """Print the model's reply to PROMPT with the vector added at the chosen layers."""
    text = " ".join(prompt).strip()
    if not text:
        raise InputError("the prompt is empty")
    parsed = parse_model_spec(model)
    if parsed.backend not in STEERABLE:
        raise InputError(f"model {model!r}: steering needs the hf or llamacpp backend "
                         "(hf:bundled, bundled)")
    option = steer_option(vector, layer, coef, relative)
    if parsed.options.get("steer"):
        option = f"{parsed.options['steer']},{option}"
    backend = load_model(parsed, steer=option)
    messages = ([Message(role="system", content=system)] if system else []) + [
        Message(role="user", content=text)]
    params = ChatParams(max_tokens=max_tokens, temperature=temperature, seed=seed)

    async def reply() -> str:
        async with backend:
            return (await backend.chat(messages, params)).text

    typer.echo(asyncio.run(reply()))


@app.command("export-gguf")
def export_gguf(
    vector: VectorOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="The .gguf file to write.")],
    layers: Annotated[str, typer.Option("--layers", help="Comma-separated blocks (from 0; "
                                        "llama.cpp cannot steer 0), or 'all'.")] = "all",
    coef: Annotated[float | None, typer.Option("--coef", help="Bake this coefficient in "
                                               "(default: unit vectors).")] = None,
    relative: Annotated[bool, typer.Option("--relative", help="The baked coefficient × the "
                                           "layer's residual norm.")] = False,
    model_hint: Annotated[str, typer.Option(help="controlvector.model_hint (the model "
                                            "type).")] = "llama",
) -> None:
    """Write a llama.cpp control vector (direction.L = output of block L, as in personae)."""
    from personae.steer.apply import load_steering_file
    from personae.steer.gguf import export_control_vector

    if relative and coef is None:
        raise InputError("--relative needs --coef")
    vec, _ = load_steering_file(vector)
    chosen = None if layers.strip() == "all" else _int_list(layers)
    path = export_control_vector(vec, out, layers=chosen, coefficient=coef, relative=relative,
                                 model_hint=model_hint)
    typer.echo(str(path))


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--layers {text!r}: expected comma-separated integers or 'all'") \
            from None
