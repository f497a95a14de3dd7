"""Helpers for testing pipelines offline: ``personae.testing.loopback.LoopbackServer``, a
loopback OpenAI-compatible server with injectable delays and failures.

(Not imported here, so that ``python -m personae.testing.loopback`` runs cleanly.)
"""
