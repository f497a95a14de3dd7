"""``personae export``: a run's stored records as files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or parquet.")] = "jsonl",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output directory "
                                             "(default: RUN_DIR/export).")] = None,
) -> None:
    """Write every stored record (responses, answers, turns, judgements...) of a run of any
    kind to JSONL or Parquet files, one per record kind."""
    from personae.report import KINDS
    from personae.runtime.spine import reopen

    opened = reopen(run_dir, KINDS)
    try:
        paths = opened.store.export(out or run_dir / "export", fmt)
    finally:
        opened.close()
    for path in paths:
        typer.echo(str(path))
