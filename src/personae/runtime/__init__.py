"""Execution: bounded concurrency, retries, timeouts, the response cache, progress."""

from personae.runtime.cache import ResponseCache, default_cache_path
from personae.runtime.executor import ChatRequest, ChatResult, Runner, RunStats
from personae.runtime.progress import ProgressReporter
from personae.runtime.retry import RetryPolicy

__all__ = ["ChatRequest", "ChatResult", "ProgressReporter", "ResponseCache", "RetryPolicy",
           "RunStats", "Runner", "default_cache_path"]
