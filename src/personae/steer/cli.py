"""``personae steer``: extract, monitor, apply, export-gguf, sweep.

Errors are raised as `InputError`/`RunError`; the ``personae`` entry point (`personae.cli.main`)
prints them as one line and sets the exit code.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from personae.errors import InputError
from personae.steer.vector import METHODS, POSITIONS

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Persona vectors: extract, monitor, apply, export to llama.cpp, sweep.")

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="A white-box model spec: "
                                       "hf:bundled or hf:PATH.")]


@app.command()
def extract(
    trait: Annotated[str, typer.Option("--trait", "-t", help="Bundled trait name (e.g. "
                                       "extroverted) or a trait JSON file "
                                       "(persona_vectors / Assistant Axis format).")],
    model: ModelOpt = "hf:bundled",
    method: Annotated[str, typer.Option(help="mean_diff or pca (of paired "
                                        "differences).")] = "mean_diff",
    position: Annotated[str, typer.Option(help="response_avg, prompt_last, prompt_avg, or "
                                          "all (one pass; the others are written beside "
                                          "--out as STEM-POSITION.safetensors).")
                        ] = "response_avg",
    questions: Annotated[int | None, typer.Option("--questions", min=1, help="Use the first N "
                                                  "questions (default: all).")] = None,
    instructions: Annotated[int | None, typer.Option("--instructions", min=1, help="Use the "
                                                     "first N instruction pairs (default: "
                                                     "all).")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, max=4096, help="Response length per "
                                            "sample.")] = 64,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0, help="0 = greedy.")] = 0.0,
    seed: Annotated[int, typer.Option(min=0, max=2**31 - 1)] = 0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output .safetensors (a "
                                             ".json sidecar goes beside it; default: "
                                             "TRAIT.safetensors).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Regenerate every "
                                           "response.")] = False,
) -> None:
    """Extract a persona vector for every layer from a trait's contrastive prompts."""
    from personae.steer.extract import extract_vectors
    from personae.steer.traits import load_trait

    if method not in METHODS:
        raise InputError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    if position != "all" and position not in POSITIONS:
        raise InputError(f"--position {position!r}: choose one of {', '.join(POSITIONS)}, all")
    if out is not None and out.suffix not in ("", ".safetensors"):
        raise InputError(f"--out {out}: a vector file ends in .safetensors")
    spec = load_trait(trait)  # before loading the model: a bad file fails fast
    positions = list(POSITIONS) if position == "all" else [position]
    result = extract_vectors(model, spec, method=method,  # type: ignore[arg-type]
                             positions=positions, n_instructions=instructions,
                             n_questions=questions, max_tokens=max_tokens,
                             temperature=temperature, seed=seed, cache=not no_cache)
    paths = result.save(out or Path(f"{spec.name}.safetensors"))
    err = Console(stderr=True)
    first = result.vectors[positions[0]]
    layers = sorted({0, first.n_layers // 4, first.n_layers // 2, 3 * first.n_layers // 4,
                     first.n_layers - 1})
    table = Table(title=f"{spec.name}: ||vector[L]|| (mean residual norm), "
                        f"{first.meta.n_pairs} pairs, {method}")
    table.add_column("layer", justify="right")
    for pos in result.vectors:
        table.add_column(pos, justify="right")
    for i in layers:
        table.add_row(str(i), *(_norm_cell(v.meta.norms, v.meta.residual_norms, i)
                                for v in result.vectors.values()))
    err.print(table)
    err.print(f"{len(result.samples)} responses ({result.cache_hits} from the cache), "
              f"{result.dropped_pairs} pairs dropped for an empty response")
    for p in paths:
        typer.echo(str(p))


def _norm_cell(norms: list[float], residual: list[float] | None, layer: int) -> str:
    return f"{norms[layer]:.2f}" + (f" ({residual[layer]:.0f})" if residual else "")


@app.command()
def monitor(
    transcript: Annotated[Path, typer.Argument(help="Chat transcript: JSON/JSONL messages, "
                                               "or an Assistant Axis transcript.")],
    vector: Annotated[Path, typer.Option("--vector", "-v", help="A .safetensors vector (or a "
                                         "persona_vectors .pt).")],
    layer: Annotated[int, typer.Option("--layer", "-l", min=0, help="Decoder block whose "
                                       "output is projected (from 0).")],
    model: ModelOpt = "hf:bundled",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write JSON lines here "
                                             "instead of stdout.")] = None,
    max_context: Annotated[int | None, typer.Option(min=64, help="Tokens per forward pass "
                                                    "(default: the model's context).")] = None,
) -> None:
    """Project every assistant turn of TRANSCRIPT on a vector: a mean per turn and
    per-token values (JSON lines), with a summary table on stderr."""
    from personae._files import atomic_write
    from personae.models import load_model
    from personae.steer.extract import require_white_box
    from personae.steer.monitor import score_transcript
    from personae.steer.vector import load_vector

    vec = load_vector(vector)
    vec.check_layer(layer)
    if not transcript.is_file():
        raise InputError(f"{transcript}: no such transcript file")
    hf = require_white_box(load_model(model))
    err = Console(stderr=True)
    if vec.meta.model != getattr(hf, "identity", vec.meta.model):
        err.print(f"[yellow]note: {vector} was extracted from {vec.meta.model}, not "
                  f"{hf.identity}[/]")
    scores = score_transcript(hf, vec, transcript, layer, max_context=max_context)
    lines = "".join(s.model_dump_json() + "\n" for s in scores)
    if out is not None:
        atomic_write(out, lines)
    else:
        sys.stdout.write(lines)
        sys.stdout.flush()
    table = Table(title=f"{transcript.name}: projection on {vec.meta.trait} at layer {layer}")
    for col in ("conv", "turn", "tokens", "mean", "context from"):
        table.add_column(col, justify="right")
    for s in scores:
        table.add_row(str(s.conversation), str(s.turn), str(s.n_tokens),
                      "—" if s.mean is None else f"{s.mean:.3f}", str(s.context_start))
    err.print(table)
    if out is not None:
        err.print(f"wrote {len(scores)} turns to {out}")


@app.command()
def sweep(
    vector: Annotated[Path, typer.Option("--vector", "-v", help="A .safetensors vector (or a "
                                         "persona_vectors .pt).")],
    layer: Annotated[int, typer.Option("--layer", "-l", min=0, help="Decoder block to steer "
                                       "(from 0).")],
    k: Annotated[float, typer.Option("--k", help="Coefficients run from -k to +k.")] = 0.5,
    steps: Annotated[int, typer.Option(min=2, max=41, help="How many coefficients "
                                       "(odd includes 0).")] = 5,
    absolute: Annotated[bool, typer.Option("--absolute", help="Coefficients are lengths in "
                                           "activation units, not multiples of the layer's "
                                           "typical residual norm.")] = False,
    trait: Annotated[str | None, typer.Option("--trait", "-t", help="Trait name or file for "
                                              "the questions and the text scorer (default: "
                                              "the vector's).")] = None,
    model: ModelOpt = "hf:bundled",
    questions: Annotated[int, typer.Option(min=2, help="Held-out trait questions (the last "
                                           "N of the file).")] = 12,
    max_tokens: Annotated[int, typer.Option(min=4, max=1024)] = 48,
    instrument: Annotated[str, typer.Option(help="ipip-120, ipip-300 or a questionnaire "
                                            "file.")] = "ipip-120",
    scale: Annotated[str | None, typer.Option(help="Domain scored by the instrument (default: "
                                              "from the trait, e.g. E for extroverted).")
                     ] = None,
    items: Annotated[int | None, typer.Option(min=2, help="First N items of the domain.")
                     ] = None,
    seed: Annotated[int, typer.Option(min=0, max=2**31 - 1)] = 0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default: "
                                             "personae-runs/sweep-<vector>-L<layer>).")] = None,
) -> None:
    """Steer over coefficients -k..+k and measure, per coefficient: the instrument score,
    an embedding text score, the activation projection and coherence (perplexity)."""
    from personae.steer.sweep import SweepConfig, format_table, run_sweep, symmetric_coefficients

    config = SweepConfig(vector=str(vector), layer=layer, relative=not absolute,
                         coefficients=symmetric_coefficients(k, steps), trait=trait,
                         model=model, questions=questions, max_tokens=max_tokens,
                         instrument=instrument, scale=scale, items=items, seed=seed)
    run_dir = out or Path("personae-runs") / f"sweep-{vector.stem}-L{layer}"
    summary, files = run_sweep(config, run_dir)
    sys.stderr.write(format_table(summary))  # Markdown: not wrapped to the terminal width
    print(files.get("plot", files["table"]))


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
    from personae.models import ChatParams, Message, load_model, parse_model_spec

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
