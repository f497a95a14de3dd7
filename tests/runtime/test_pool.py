"""The one bounded worker pool: the bound, results handed over as they complete, failures
kept apart, and nothing left running after an error or a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from personae.errors import RunError
from personae.runtime.pool import Failure, run_pool


class Tracker:
    def __init__(self) -> None:
        self.in_flight = self.peak = 0
        self.started: list[int] = []
        self.cancelled: list[int] = []

    async def work(self, job: int, delay: float = 0.001) -> int:
        self.started.append(job)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(delay)
            return job * 10
        except asyncio.CancelledError:
            self.cancelled.append(job)
            raise
        finally:
            self.in_flight -= 1


def test_at_most_limit_jobs_are_in_flight() -> None:
    tracker = Tracker()
    results: list[int] = []
    asyncio.run(run_pool(range(50), tracker.work, limit=4,
                         on_result=lambda job, r: results.append(r)))
    assert tracker.peak == 4 and sorted(results) == [10 * i for i in range(50)]


def test_jobs_are_taken_lazily_in_order() -> None:
    tracker = Tracker()
    asyncio.run(run_pool(iter(range(10)), tracker.work, limit=3))
    assert tracker.started == list(range(10))


def test_each_result_is_handed_over_in_completion_order() -> None:
    # Job i takes (5 - i) ticks: with all five in flight they finish last to first.
    order: list[tuple[int, int]] = []

    async def slow(job: int) -> int:
        await asyncio.sleep(0.02 * (5 - job))
        return job

    asyncio.run(run_pool(range(5), slow, limit=5,
                         on_result=lambda job, r: order.append((job, r))))
    assert order == [(4, 4), (3, 3), (2, 2), (1, 1), (0, 0)]


def test_an_async_callback_holds_the_workers_back() -> None:
    tracker = Tracker()
    stored: list[int] = []

    async def store(job: int, result: int) -> None:
        await asyncio.sleep(0.002)
        stored.append(job)
        # While this result is being stored, its worker takes nothing new.
        assert len(tracker.started) <= len(stored) + 2

    asyncio.run(run_pool(range(20), tracker.work, limit=2, on_result=store))
    assert sorted(stored) == list(range(20))


def test_a_failure_is_recorded_and_the_other_jobs_go_on() -> None:
    async def work(job: int) -> int:
        await asyncio.sleep(0.001)
        if job == 3:
            raise RunError("model down")
        return job

    done: list[int] = []
    told: list[tuple[int, str]] = []
    failures = asyncio.run(run_pool(range(10), work, limit=3,
                                    on_result=lambda job, r: done.append(job),
                                    on_failure=lambda job, exc: told.append((job, str(exc)))))
    assert sorted(done) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert [(f.job, str(f.error)) for f in failures] == told == [(3, "model down")]
    assert isinstance(failures[0], Failure)


def test_an_uncaught_error_cancels_the_rest_and_propagates() -> None:
    tracker = Tracker()

    async def work(job: int) -> int:
        if job == 1:
            await asyncio.sleep(0.01)
            raise ValueError("a bug")
        return await tracker.work(job, delay=10)

    async def main() -> set[asyncio.Task[object]]:
        with pytest.raises(ValueError, match="a bug"):
            await run_pool(range(100), work, limit=4)
        return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]

    left = asyncio.run(main())
    assert not left and tracker.in_flight == 0
    assert sorted(tracker.cancelled) == [0, 2, 3] and len(tracker.started) == 3


def test_errors_outside_catch_are_not_failures() -> None:
    async def work(job: int) -> int:
        raise RunError("down")

    with pytest.raises(RunError, match="down"):
        asyncio.run(run_pool(range(3), work, limit=2, catch=()))


def test_cancellation_leaves_no_task_running() -> None:
    tracker = Tracker()

    async def main() -> set[asyncio.Task[object]]:
        pool = asyncio.create_task(run_pool(range(100),
                                            lambda job: tracker.work(job, delay=10), limit=5))
        while tracker.in_flight < 5:
            await asyncio.sleep(0)
        pool.cancel()  # what Ctrl-C does to the run's main task
        with pytest.raises(asyncio.CancelledError):
            await pool
        return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]

    left = asyncio.run(main())
    assert not left and tracker.in_flight == 0
    assert sorted(tracker.cancelled) == [0, 1, 2, 3, 4] and len(tracker.started) == 5


def test_the_limit_must_allow_one_job() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        asyncio.run(run_pool([], lambda job: asyncio.sleep(0), limit=0))
