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
    import importlib.util

    from personae.models.base import BACKEND_CAPABILITIES, Capability
    from personae.models.bundled import bundled_gguf_path, cache_dir
    from personae.models.hf import HFOptions
    from personae.models.llamacpp import LlamaCppOptions
    from personae.models.openai_compat import OpenAIOptions
    from personae.models.scripted import ScriptedOptions
    from personae.models.spec import SPEC_FORMS

    table = Table(title="personae model backends")
    for col in ("backend", "spec", "capabilities", "steering", "installed"):
        table.add_column(col, overflow="fold")
    specs = {"llamacpp": "bundled | llamacpp:PATH.gguf", "hf": "hf:bundled | hf:PATH",
             "openai": "openai:MODEL[@BASE_URL]", "scripted": "scripted:FILE"}
    needs = {"llamacpp": "llama_cpp", "hf": "transformers", "openai": "openai",
             "scripted": "yaml"}
    how = {"llamacpp": "control vectors", "hf": "forward hooks"}
    options = {"llamacpp": LlamaCppOptions, "hf": HFOptions, "openai": OpenAIOptions,
               "scripted": ScriptedOptions}
    for name, caps in BACKEND_CAPABILITIES.items():
        ok = importlib.util.find_spec(needs[name]) is not None
        table.add_row(name, escape(specs[name]),
                      ", ".join(sorted(c.value for c in caps if c != Capability.STEERING)),
                      f"yes ({how[name]})" if Capability.STEERING in caps else "no",
                      "yes" if ok else f"no ({needs[name]} missing)")
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
    for name, cls in options.items():
        typer.echo(f"  {name}: " + ", ".join(f"{k}={f.default}"
                                            for k, f in cls.model_fields.items()))
    typer.echo("steering: ?steer=FILE:LAYER:COEF[r] on llamacpp and hf specs, or "
               "`personae steer apply`")
