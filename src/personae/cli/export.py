"""``personae export``: a run's stored records as files, or an eval run's measured
responses as training data (SFT rows, DPO pairs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from personae._files import atomic_write
from personae.errors import InputError

FORMATS = ("jsonl", "parquet", "sft", "dpo")
# The formats that read each training option.
READ_BY = {"--min-fidelity": ("sft", "dpo"), "--min-consistency": ("sft", "dpo"),
           "--min-margin": ("dpo",), "--rejected-from": ("dpo",)}


def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    fmt: Annotated[str, typer.Option(
        "--format", help="jsonl or parquet: every record, one file per record kind (any "
        "run); sft or dpo: training data in TRL's chat formats (eval runs).")] = "jsonl",
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output directory for jsonl/parquet (default: RUN_DIR/export); "
        "output file for sft/dpo (default: RUN_DIR/export/sft.jsonl or dpo.jsonl).")] = None,
    min_fidelity: Annotated[float | None, typer.Option(
        help="sft/dpo: lowest fidelity (judges' mean rubric score, 1-5) of an SFT row's "
        "response or a DPO pair's chosen one (default: 4 for sft, none for dpo).")] = None,
    min_consistency: Annotated[float | None, typer.Option(
        help="sft/dpo: lowest consistency (C-score of the persona's facts) of an SFT row's "
        "response or a DPO pair's chosen one (default: none).")] = None,
    min_margin: Annotated[float, typer.Option(
        min=0, help="dpo: a pair's fidelity difference must exceed this.")] = 0.0,
    rejected_from: Annotated[str, typer.Option(
        help="dpo: samples (worst of the eval's --samples) or control (the answer with no "
        "persona prompt).")] = "samples",
) -> None:
    """Write every stored record of a run of any kind (jsonl, parquet), or an eval run's
    responses as training data: --format sft keeps the persona responses that reach the
    thresholds, --format dpo pairs the best and worst response per probe."""
    if fmt not in FORMATS:
        raise InputError(f"export format {fmt!r}: use {', '.join(FORMATS)}")
    given = {"--min-fidelity": min_fidelity is not None,
             "--min-consistency": min_consistency is not None,
             "--min-margin": min_margin != 0, "--rejected-from": rejected_from != "samples"}
    for flag in (f for f, on in given.items() if on):
        if fmt not in READ_BY[flag]:  # it would be ignored without a word
            raise InputError(f"{flag} applies to --format {' or '.join(READ_BY[flag])}")
    if fmt in ("sft", "dpo"):
        _training(run_dir, fmt, out, min_fidelity, min_consistency, min_margin, rejected_from)
        return
    from personae.report import KINDS
    from personae.runtime.spine import reopen

    opened = reopen(run_dir, KINDS)
    try:
        paths = opened.store.export(out or run_dir / "export", fmt)
    finally:
        opened.close()
    for path in paths:
        typer.echo(str(path))


def _training(run_dir: Path, fmt: str, out: Path | None, min_fidelity: float | None,
              min_consistency: float | None, min_margin: float, rejected_from: str) -> None:
    from personae.evals.training import (
        DEFAULT_MIN_FIDELITY,
        Thresholds,
        read_run,
        training_rows,
    )

    if rejected_from not in ("samples", "control"):
        raise InputError(f"--rejected-from {rejected_from!r}: use samples or control")
    if min_fidelity is None and fmt == "sft":
        min_fidelity = DEFAULT_MIN_FIDELITY
    run = read_run(run_dir)
    rows, tally = training_rows(run, "sft" if fmt == "sft" else "dpo",
                                thresholds=Thresholds(min_fidelity, min_consistency),
                                rejected_from="samples" if rejected_from == "samples"
                                else "control", min_margin=min_margin)
    path = atomic_write(out or run_dir / "export" / f"{fmt}.jsonl",
                        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    typer.echo(str(path))
    typer.echo(tally.line(fmt, min_margin), err=True)
