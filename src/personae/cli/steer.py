"""``personae steer``: extract, monitor, apply, export-gguf, sweep.

Every command checks all its inputs (files, layers, options, output paths) before it loads a
model. Errors are raised as `InputError`/`RunError`; the ``personae`` entry point
(`personae.cli.main`) prints them as one line and sets the exit code.

Coefficients are relative by default in ``apply``, ``sweep`` and ``export-gguf --coef``
(× the layer's typical residual norm, which personae stores with each extracted vector);
``--absolute`` makes them activation units, for vector files without residual norms.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from personae.cli.options import finish_run, run_dir_option
from personae.errors import InputError
from personae.steer.inputs import (
    RELATIVE_HELP,
    check_output_file,
    check_run_dir,
    require_hf_spec,
    require_residual_norms,
)
from personae.vectors.file import METHODS, POSITIONS

RunDirOpt = run_dir_option("sweep-<vector>-L<layer>-<digest of the settings and files>")

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  help="Persona vectors: extract, monitor, apply, export to llama.cpp, sweep.")

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="A white-box model spec: "
                                       "hf:bundled or hf:PATH.")]
# One flag pair and one default for every command that takes a coefficient.
RelativeOpt = Annotated[bool, typer.Option("--relative/--absolute", help=RELATIVE_HELP)]


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
    from personae.steer.extract import extract_vectors, output_paths
    from personae.steer.traits import load_trait

    if method not in METHODS:
        raise InputError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    if position != "all" and position not in POSITIONS:
        raise InputError(f"--position {position!r}: choose one of {', '.join(POSITIONS)}, all")
    if out is not None and out.suffix not in ("", ".safetensors"):
        raise InputError(f"--out {out}: a vector file ends in .safetensors")
    spec = load_trait(trait)
    if method == "pca" and spec.limit(n_instructions=instructions,
                                      n_questions=questions).n_pairs < 2:
        raise InputError("--method pca needs at least 2 contrastive pairs; use more "
                         "--questions or --method mean_diff")
    positions = list(POSITIONS) if position == "all" else [position]
    target = out or Path(f"{spec.name}.safetensors")
    for path in output_paths(target, positions).values():
        check_output_file(path, "--out")
    require_hf_spec(model, "extract")
    result = extract_vectors(model, spec, method=method,  # type: ignore[arg-type]
                             positions=positions, n_instructions=instructions,
                             n_questions=questions, max_tokens=max_tokens,
                             temperature=temperature, seed=seed, cache=not no_cache)
    paths = result.save(target)
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
                                               "an Assistant Axis transcript, or the "
                                               "transcripts.jsonl of `personae simulate` "
                                               "(scored per agent).")],
    vector: Annotated[Path, typer.Option("--vector", "-v", help="A .safetensors vector (or a "
                                         "persona_vectors .pt).")],
    layer: Annotated[int, typer.Option("--layer", "-l", min=0, help="Decoder block whose "
                                       "output is projected (from 0).")],
    model: ModelOpt = "hf:bundled",
    agent: Annotated[list[str] | None, typer.Option(
        "--agent", "-a", help="A simulate transcript's agent to score, in its own view "
        "(repeat for several; default: every agent).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write JSON lines here "
                                             "instead of stdout.")] = None,
    max_context: Annotated[int | None, typer.Option(min=64, help="Tokens per forward pass "
                                                    "(default: the model's context).")] = None,
) -> None:
    """Project every assistant turn of TRANSCRIPT on a vector: a mean per turn and
    per-token values (JSON lines: conversation, agent, turn...), with a summary table on
    stderr."""
    from personae._files import atomic_write
    from personae.models import load_model
    from personae.models.whitebox import require_white_box
    from personae.steer.monitor import load_views, score_transcript
    from personae.vectors.file import load_vector

    vec = load_vector(vector)
    vec.check_layer(layer)
    vec.unit(layer)  # a zero row cannot be projected on
    views = load_views(transcript, agents=agent)
    if out is not None:
        check_output_file(out, "--out")
    require_hf_spec(model, "monitor")
    hf = require_white_box(load_model(model))
    err = Console(stderr=True)
    if vec.meta.model != getattr(hf, "identity", vec.meta.model):
        err.print(f"[yellow]note: {vector} was extracted from {vec.meta.model}, not "
                  f"{hf.identity}[/]")
    scores = score_transcript(hf, vec, views, layer, max_context=max_context)
    lines = "".join(s.model_dump_json() + "\n" for s in scores)
    if out is not None:
        atomic_write(out, lines)
    else:
        sys.stdout.write(lines)
        sys.stdout.flush()
    simulated = any(s.agent is not None for s in scores)
    table = Table(title=f"{transcript.name}: projection on {vec.meta.trait} at layer {layer}")
    columns = (("conversation", "agent", "turn", "own turn") if simulated
               else ("conv", "turn"))
    for col in (*columns, "tokens", "mean", "context from"):
        table.add_column(col, justify="left" if col in ("conversation", "agent") else "right")
    for s in scores:
        ids = ((str(s.conversation_id), str(s.agent), str(s.turn), str(s.assistant_turn + 1))
               if simulated else (str(s.conversation), str(s.turn)))
        table.add_row(*ids, str(s.n_tokens), "—" if s.mean is None else f"{s.mean:.3f}",
                      str(s.context_start))
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
    relative: RelativeOpt = True,
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
    out: RunDirOpt = None,
) -> None:
    """Steer over coefficients -k..+k and measure, per coefficient: the instrument score,
    an embedding text score, the activation projection and coherence (perplexity)."""
    from personae.steer.sweep import SweepConfig, run_sweep, symmetric_coefficients

    config = SweepConfig(vector=str(vector), layer=layer, relative=relative,
                         coefficients=symmetric_coefficients(k, steps), trait=trait,
                         model=model, questions=questions, max_tokens=max_tokens,
                         instrument=instrument, scale=scale, items=items, seed=seed)
    # Checks every input before the model loads.
    result = run_sweep(config, check_run_dir(out) if out is not None else None)
    finish_run(result, f"{result.model_calls} steered answers")


VectorOpt = Annotated[Path, typer.Option("--vector", "-v", help="A personae vector "
                                         "(.safetensors + .json), a persona_vectors .pt file, "
                                         "or a llama.cpp control vector (.gguf).")]


@app.command("apply")
def apply(
    prompt: Annotated[list[str], typer.Argument(help="The user message.")],
    vector: VectorOpt,
    layer: Annotated[list[int], typer.Option("--layer", "-l", min=0, help="Decoder block to "
                                             "steer, from 0 (repeat for several).")],
    coef: Annotated[float, typer.Option("--coef", "-c", help="Coefficient: the length of the "
                                        "push along the unit vector.")],
    relative: RelativeOpt = True,
    model: Annotated[str, typer.Option("--model", "-m", help="hf:bundled, hf:PATH, bundled or "
                                       "llamacpp:PATH.gguf.")] = "hf:bundled",
    system: Annotated[str | None, typer.Option(help="A system prompt.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, max=32768)] = 128,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.0,
    seed: Annotated[int, typer.Option(min=0, max=2**31 - 1)] = 0,
) -> None:
    """Print the model's reply to PROMPT with the vector added at the chosen layers."""
    from personae.models import Capability, ChatParams, Message, load_model, parse_model_spec
    from personae.models.registry import backend, backends_with
    from personae.vectors.spec import load_steering_file
    from personae.vectors.steering import Steering

    text = " ".join(prompt).strip()
    if not text:
        raise InputError("the prompt is empty")
    parsed = parse_model_spec(model)
    chosen = backend(parsed.backend)
    if Capability.STEERING not in chosen.capabilities:
        raise InputError(f"model {model!r}: steering needs the "
                         f"{' or '.join(sorted(backends_with(Capability.STEERING)))} backend "
                         "(hf:bundled, bundled)")
    if min(layer, default=0) < chosen.first_steerable_block:
        raise InputError(f"--layer {min(layer)}: the {chosen.name} backend cannot steer block "
                         f"{min(layer)} (it steers from block {chosen.first_steerable_block}); "
                         "use an hf: model or another layer")
    if not layer:
        raise InputError("--layer is required (decoder block, from 0)")
    vec, normalize = load_steering_file(vector)
    if relative:
        require_residual_norms(vec, vector, normalize=normalize)
    # Checked before the model loads: each Steering checks its layer and norms.
    steerings = [Steering(vec, i, coef, relative, normalize) for i in layer]
    backend = load_model(parsed, steerings=steerings)
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
    relative: Annotated[bool | None, typer.Option(
        "--relative/--absolute", show_default=False,
        help="With --coef (default: relative): " + RELATIVE_HELP)] = None,
    model_hint: Annotated[str, typer.Option(help="controlvector.model_hint (the model "
                                            "type).")] = "llama",
) -> None:
    """Write a llama.cpp control vector (direction.L = output of block L, as in personae)."""
    from personae.vectors.gguf import export_control_vector
    from personae.vectors.spec import load_steering_file

    if relative is not None and coef is None:
        raise InputError(f"--{'relative' if relative else 'absolute'} needs --coef (without it "
                         "the file holds unit vectors)")
    relative = coef is not None and relative is not False  # the shared default: relative
    if out.suffix not in ("", ".gguf"):
        raise InputError(f"--out {out}: a control vector file ends in .gguf")
    check_output_file(out if out.suffix == ".gguf" else out.with_name(out.name + ".gguf"),
                      "--out")
    vec, normalize = load_steering_file(vector)
    chosen = None if layers.strip() == "all" else _int_list(layers)
    for i in chosen or ():
        vec.check_layer(i)
    if relative:
        require_residual_norms(vec, vector, normalize=normalize)
    path = export_control_vector(vec, out, layers=chosen, coefficient=coef, relative=relative,
                                 model_hint=model_hint)
    typer.echo(str(path))


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--layers {text!r}: expected comma-separated integers or 'all'") \
            from None
