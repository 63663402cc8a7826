"""The bounded CPU work pool: off-loop execution, admission control, deadlines."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from facematch.service.runtime.workpool import BoundPool, DeadlineExceeded, Overloaded, WorkPool

WAIT_S = 10.0  # generous upper bound for events that should happen at once


def _blocker(started: threading.Event, release: threading.Event) -> str:
    started.set()
    if not release.wait(WAIT_S):
        raise RuntimeError("test never released the job")
    return "done"


def test_runs_off_the_event_loop_thread_and_returns_result() -> None:
    pool = WorkPool(threads=2)

    async def main() -> tuple[int, int]:
        loop_thread = threading.get_ident()
        job_thread = await pool.run(threading.get_ident)
        return loop_thread, job_thread

    try:
        loop_thread, job_thread = asyncio.run(main())
    finally:
        pool.shutdown()
    assert job_thread != loop_thread
    assert pool.pending == 0
    assert pool.stats.completed == 1


def test_exceptions_of_the_job_reach_the_caller() -> None:
    pool = WorkPool(threads=1)

    def boom() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        asyncio.run(pool.run(boom))
    assert pool.pending == 0
    pool.shutdown()


def test_jobs_run_in_parallel_up_to_the_thread_count() -> None:
    pool = WorkPool(threads=2)
    barrier = threading.Barrier(2, timeout=WAIT_S)

    async def main() -> list[int]:
        # Each job waits for the other: this only completes if both run at once.
        return await asyncio.gather(pool.run(barrier.wait), pool.run(barrier.wait))

    results = asyncio.run(main())
    pool.shutdown()
    assert sorted(results) == [0, 1]


def test_full_pool_refuses_at_once_then_recovers() -> None:
    depths: list[int] = []
    pool = WorkPool(threads=1, max_pending=2, on_depth=depths.append)
    started, release = threading.Event(), threading.Event()

    async def main() -> tuple[Overloaded, str, str, str]:
        running = asyncio.ensure_future(pool.run(_blocker, started, release))
        await asyncio.to_thread(started.wait, WAIT_S)
        queued = asyncio.ensure_future(pool.run(str.upper, "queued"))
        await asyncio.sleep(0)  # let the second job be admitted
        assert pool.pending == 2
        with pytest.raises(Overloaded) as refused:
            await pool.run(str.upper, "refused")
        release.set()
        first, second = await running, await queued
        after = await pool.run(str.upper, "after")
        return refused.value, first, second, after

    refused, first, second, after = asyncio.run(main())
    pool.shutdown()
    assert (first, second, after) == ("done", "QUEUED", "AFTER")
    assert refused.limit == 2
    assert refused.pending == 2
    assert refused.retry_after_s >= 1
    assert pool.stats.rejected == 1
    assert max(depths) == 2
    assert depths[-1] == 0
    assert pool.pending == 0


def test_queued_job_past_its_deadline_never_runs() -> None:
    pool = WorkPool(threads=1, max_pending=4)
    started, release = threading.Event(), threading.Event()
    ran = threading.Event()

    async def main() -> None:
        running = asyncio.ensure_future(pool.run(_blocker, started, release))
        await asyncio.to_thread(started.wait, WAIT_S)
        with pytest.raises(DeadlineExceeded):
            await pool.run(ran.set, deadline=time.monotonic() + 0.05)
        # The expired job gave its slot back while the first still runs.
        assert pool.pending == 1
        release.set()
        await running

    asyncio.run(main())
    pool.shutdown()
    assert not ran.is_set()
    assert pool.stats.expired == 1
    assert pool.pending == 0


def test_running_job_past_deadline_keeps_its_slot_until_it_finishes() -> None:
    finished = threading.Event()
    pool = WorkPool(
        threads=1, max_pending=1, on_depth=lambda depth: finished.set() if depth == 0 else None
    )
    started, release = threading.Event(), threading.Event()

    async def main() -> None:
        with pytest.raises(DeadlineExceeded):
            await pool.run(_blocker, started, release, deadline=time.monotonic() + 0.05)
        assert started.is_set()
        # Native work cannot be interrupted: the CPU is still committed.
        assert pool.pending == 1
        with pytest.raises(Overloaded):
            await pool.run(str.upper, "x")
        release.set()
        await asyncio.to_thread(finished.wait, WAIT_S)
        assert await pool.run(str.upper, "x") == "X"

    asyncio.run(main())
    pool.shutdown()
    assert pool.pending == 0


def test_deadline_already_passed_is_refused_without_admission() -> None:
    pool = WorkPool(threads=1)
    with pytest.raises(DeadlineExceeded):
        asyncio.run(pool.run(str.upper, "x", deadline=time.monotonic() - 1))
    assert pool.stats.admitted == 0
    pool.shutdown()


def test_shutdown_refuses_new_work() -> None:
    pool = WorkPool(threads=1)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        asyncio.run(pool.run(str.upper, "x"))
    assert pool.pending == 0


@pytest.mark.parametrize(("threads", "max_pending"), [(-1, 4), (2, 1)])
def test_invalid_sizes_are_refused(threads: int, max_pending: int) -> None:
    with pytest.raises(ValueError):
        WorkPool(threads=threads, max_pending=max_pending)


def test_ticket_admits_at_the_door_and_its_job_uses_the_same_slot() -> None:
    pool = WorkPool(threads=1, max_pending=1)

    async def main() -> str:
        ticket = pool.admit()
        assert pool.pending == 1
        with pytest.raises(Overloaded):
            pool.admit()
        result = await pool.run(str.upper, "x", ticket=ticket)
        assert pool.pending == 1  # the request still holds its slot
        ticket.release()
        ticket.release()  # idempotent: a second release cannot free someone else's slot
        return result

    assert asyncio.run(main()) == "X"
    assert pool.pending == 0
    pool.shutdown()


def test_slot_outlives_the_request_while_its_job_still_runs() -> None:
    finished = threading.Event()
    pool = WorkPool(
        threads=1, max_pending=1, on_depth=lambda depth: finished.set() if depth == 0 else None
    )
    started, release = threading.Event(), threading.Event()

    async def main() -> None:
        ticket = pool.admit()
        with pytest.raises(DeadlineExceeded):
            await pool.run(
                _blocker, started, release, ticket=ticket, deadline=time.monotonic() + 0.05
            )
        ticket.release()  # the request ends (timeout answered) ...
        assert pool.pending == 1  # ... but its job still holds the CPU slot
        release.set()
        await asyncio.to_thread(finished.wait, WAIT_S)

    asyncio.run(main())
    pool.shutdown()
    assert pool.pending == 0


def test_on_job_reports_name_queue_wait_and_run_time() -> None:
    jobs: list[tuple[str, float, float]] = []
    pool = WorkPool(threads=1, on_job=lambda *timing: jobs.append(timing))

    def shout(text: str) -> str:
        return text.upper()

    assert asyncio.run(pool.run(shout, "x")) == "X"
    pool.shutdown()
    ((name, queued_s, ran_s),) = jobs
    assert name == "shout"
    assert queued_s >= 0
    assert ran_s >= 0


def test_bound_pool_runs_in_the_requests_slot_with_its_deadline() -> None:
    pool = WorkPool(threads=1, max_pending=1)
    started, release = threading.Event(), threading.Event()

    async def main() -> None:
        ticket = pool.admit()
        bound = BoundPool(pool, ticket=ticket, deadline=time.monotonic() + 0.05)
        assert (bound.pending, bound.max_pending) == (1, 1)
        # No second slot is needed: the request's own slot runs the job.
        with pytest.raises(DeadlineExceeded):
            await bound.run(_blocker, started, release)
        release.set()
        ticket.release()

    asyncio.run(main())
    pool.shutdown()
    assert started.is_set()
    assert pool.pending == 0
