"""Retries with exponential backoff and full jitter, for transient model errors."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` tries in all; the wait before try n+1 is uniform in
    ``[0, min(max_delay, base_delay * 2**n)]`` (AWS "full jitter"), or the server's
    ``Retry-After`` when it sent one (capped at ``max_retry_after``).

    >>> RetryPolicy(base_delay=1, max_delay=4).cap(10)
    4.0
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    # A server's Retry-After is honoured up to this long: retrying earlier only earns
    # another 429 and wastes an attempt.
    max_retry_after: float = 300.0

    def cap(self, attempt: int) -> float:
        return float(min(self.max_delay, self.base_delay * 2**attempt))

    def delay(self, attempt: int, retry_after: float | None = None,
              rng: random.Random | None = None) -> float:
        if retry_after is not None:
            return min(self.max_retry_after, max(0.0, retry_after))
        return (rng or random).uniform(0.0, self.cap(attempt))
