"""Helpers for testing pipelines offline: a loopback OpenAI-compatible server."""

from personae.testing.loopback import LoopbackServer

__all__ = ["LoopbackServer"]
