"""A bounded worker pool: every run kind's "run these jobs, N at a time, keep each result the
moment it exists".

``limit`` workers pull jobs from one shared iterator, so at most ``limit`` are in flight and
jobs are taken lazily (a job built from what an earlier one stored sees it). A result goes to
``on_result`` as soon as its job completes, before that worker takes another job: a caller
that stores each record there never holds more than ``limit`` unstored results, and an
awaitable callback (a bounded queue's ``put``) holds the workers back while it waits.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from personae.errors import RunError

J = TypeVar("J")
R = TypeVar("R")


@dataclass(frozen=True)
class Failure(Generic[J]):
    """A job whose work raised one of the errors the pool was told to catch."""

    job: J
    error: Exception


async def run_pool(
    jobs: Iterable[J],
    work: Callable[[J], Awaitable[R]],
    *,
    limit: int,
    on_result: Callable[[J, R], Awaitable[None] | None] | None = None,
    on_failure: Callable[[J, Exception], None] | None = None,
    catch: tuple[type[Exception], ...] = (RunError,),
) -> list[Failure[J]]:
    """Run ``work(job)`` for every job, at most ``limit`` at a time; returns the failures.

    ``on_result(job, result)`` is called in completion order (awaited when it returns an
    awaitable). An error in ``catch`` fails only its own job: it is passed to
    ``on_failure`` at once and returned in the list, and the other jobs go on. Any other
    error (a bug, bad input), and cancellation (Ctrl-C), cancel every job still running
    and wait for them before it propagates, so nothing keeps calling a model afterwards.

    >>> async def double(n: int) -> int:
    ...     await asyncio.sleep(0)
    ...     return 2 * n
    >>> seen: list[int] = []
    >>> asyncio.run(run_pool(range(5), double, limit=2,
    ...                      on_result=lambda n, r: seen.append(r)))
    []
    >>> sorted(seen)
    [0, 2, 4, 6, 8]
    """
    if limit < 1:
        raise ValueError(f"a pool needs at least one worker, got limit={limit}")
    pending = iter(jobs)
    failures: list[Failure[J]] = []

    async def worker() -> None:
        for job in pending:  # one shared iterator: each job goes to exactly one worker
            try:
                result = await work(job)
            except catch as exc:
                failures.append(Failure(job, exc))
                if on_failure is not None:
                    on_failure(job, exc)
                continue
            if on_result is not None:
                stored = on_result(job, result)
                if inspect.isawaitable(stored):
                    await stored

    tasks = [asyncio.create_task(worker()) for _ in range(limit)]
    try:
        await asyncio.gather(*tasks)
    finally:
        # gather() leaves the other workers running when one raises; stop them here.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return failures
