"""The ``personae`` command line: one module per command group (`personae.cli.main` puts
them together and is the entry point)."""

from personae.cli.main import app, console_main, main

__all__ = ["app", "console_main", "main"]
