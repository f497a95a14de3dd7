"""``personae survey``: a questionnaire put to personas or the bare model."""

from __future__ import annotations

from typing import Annotated

import typer

from personae.cli.options import csv, finish_run, run_dir_option

RunDirOpt = run_dir_option("survey-<settings digest>")


def survey(
    personas: Annotated[str | None, typer.Option(
        "--personas", "-p", help="Persona file, 'sample', 'personagym' or SET:ID "
        "(default: none, the bare model answers).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model spec "
                                              "(default: bundled).")] = None,
    instrument: Annotated[str | None, typer.Option(
        "--instrument", "-i", help="ipip-120 (default), ipip-300, or a questionnaire "
        "file (YAML/JSON).")] = None,
    mode: Annotated[str | None, typer.Option(
        "--mode", help="logprob (default: probabilities over the response digits) or "
        "generate (parse a short reply).")] = None,
    variants: Annotated[str | None, typer.Option(
        "--variants", help="Comma-separated: base, reversed, paraphrase, shuffled (with its "
        "ordered baseline), or all (default: base).")] = None,
    shape: Annotated[bool, typer.Option(
        "--shape", help="Also prompt each Big Five domain at 9 levels and report Spearman's "
        "rho between level and measured score.")] = False,
    limit: Annotated[int | None, typer.Option(help="Only the first N personas.")] = None,
    items: Annotated[int | None, typer.Option(
        "--items", help="Only the first N items (quick runs).")] = None,
    template: Annotated[str | None, typer.Option(
        "--template", "-t", help="Persona system-prompt template (default: card).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the shuffled item order.")] = None,
    block_size: Annotated[int | None, typer.Option(
        help="Items per conversation in the ordered/shuffled variants (default 10).")] = None,
    out: RunDirOpt = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests in flight.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Always call the model.")] = False,
) -> None:
    """Put a personality questionnaire to personas (or the bare model): domain scores with
    CIs, reliability, acquiescence, unparsable rate, robustness across variants, shaping."""
    from personae.survey.run import build_survey_config, run_survey

    config = build_survey_config(
        personas=personas, model=model, instrument=instrument, mode=mode,
        variants=csv(variants), shape=shape, limit=limit, items=items, template=template,
        seed=seed, block_size=block_size, concurrency=concurrency)
    result = run_survey(config, out, use_cache=not no_cache)
    finish_run(result, f"{result.model_calls} model calls", failed="items")
