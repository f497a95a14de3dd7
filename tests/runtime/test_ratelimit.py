from __future__ import annotations

import asyncio
import time

import pytest

from personae.runtime.ratelimit import TokenBucket


def test_burst_then_steady_rate() -> None:
    async def main() -> list[float]:
        bucket = TokenBucket(rate=20, burst=3)
        stamps = []
        for _ in range(7):
            await bucket.acquire()
            stamps.append(time.monotonic())
        return stamps

    stamps = asyncio.run(main())
    assert stamps[2] - stamps[0] < 0.1  # the burst goes at once
    # then 20 per second: never faster (a loaded machine may only make it slower)
    assert 4 / 20 - 0.01 <= stamps[6] - stamps[2] < 1.0


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0)
