"""``personae models``: the backends, their capabilities and options, the bundled model."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from personae.errors import InputError


def models() -> None:
    """List the backends: spec forms, capabilities (steering among them), the options each
    takes after a ``?`` in its spec, and where the bundled model is."""
    from personae.models.bundled import bundled_gguf_path, cache_dir
    from personae.models.capability import Capability
    from personae.models.registry import BACKENDS, SPEC_FORMS

    table = Table(title="personae model backends")
    for col in ("backend", "spec", "capabilities", "steering", "installed"):
        table.add_column(col, overflow="fold")
    for b in BACKENDS.values():
        table.add_row(b.name, escape(" | ".join(b.spec_forms)),
                      ", ".join(sorted(c.value for c in b.capabilities
                                       if c != Capability.STEERING)),
                      f"yes ({b.steering})" if b.steering else "no",
                      "yes" if b.installed else f"no ({b.requires} missing)")
    Console().print(table)
    try:
        where = str(bundled_gguf_path())
    except InputError as exc:
        where = str(exc)
    typer.echo(f"bundled model: SmolLM2-135M-Instruct (Apache-2.0) at {where}")
    typer.echo(f"cache: {cache_dir()}  (set PERSONAE_CACHE_DIR to move it)")
    typer.echo("spec forms: " + ", ".join(SPEC_FORMS))
    typer.echo("options, after a ? in the spec (bundled?n_ctx=8192&n_threads=2), with their "
               "defaults:")
    for b in BACKENDS.values():
        fields = b.model_class().options_type.model_fields
        typer.echo(f"  {b.name}: " + ", ".join(f"{k}={f.default}" for k, f in fields.items()))
    typer.echo("steering: ?steer=FILE:LAYER:COEF[r] on llamacpp and hf specs, or "
               "`personae steer apply`")
