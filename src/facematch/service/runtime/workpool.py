"""A bounded executor for the CPU-heavy engine calls, with admission control.

Face matching is CPU work (decode, HOG detection, landmarks, the descriptor
network). Run on the event loop it would stall every other request of the
worker; queued without bound it would make latency grow until clients time
out. :class:`WorkPool` does neither:

* work runs on a small thread pool sized to the machine's cores. Threads are
  enough because the expensive native calls release the GIL while they run:
  HOG detection scales across threads as across processes, and where the
  networks do not scale, processes do no better, so the limit is the hardware,
  not the GIL (``bench/gil_release.py``; figures in docs/performance.md);
* admission is decided at once: when the jobs already admitted (running plus
  queued) reach ``max_pending``, :meth:`WorkPool.run` raises :class:`Overloaded`
  without queueing, and the HTTP layer answers 429 with ``Retry-After``;
* every job carries the request's deadline: a job still queued when its
  deadline passes is dropped before it starts (:class:`DeadlineExceeded`),
  so a backlog never turns into work whose answer nobody waits for.

A job that has started cannot be interrupted (native code); its slot is
released when it really finishes, so the admission count always reflects the
CPU actually committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from facematch.service.errors import DeadlineExceeded, Overloaded

T = TypeVar("T")

__all__ = [
    "BoundPool",
    "DeadlineExceeded",
    "Overloaded",
    "PoolStats",
    "Ticket",
    "WorkPool",
    "default_threads",
]


def default_threads() -> int:
    """Threads for CPU work: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Ticket:
    """One admitted slot of the pool, held by a request from admission to its end.

    Admission at the door (before the request consumes a trial or touches the
    database) means an overloaded server refuses without side effects. The
    slot is given back when the request *and* any job it started have both
    finished: a job that outlives its request (deadline passed while native
    code ran) still occupies the CPU, so it still occupies the slot.
    """

    __slots__ = ("_pool", "_refs")

    def __init__(self, pool: WorkPool) -> None:
        self._pool = pool
        self._refs = 1  # the request's own reference

    def _acquire(self) -> None:
        with self._pool._lock:
            if self._refs <= 0:
                raise RuntimeError("ticket already released")
            self._refs += 1

    def release(self) -> None:
        """Drop one reference; the slot returns to the pool with the last one."""
        with self._pool._lock:
            if self._refs <= 0:
                return
            self._refs -= 1
            last = self._refs == 0
        if last:
            self._pool._release()


class PoolStats:
    """Counters the metrics layer reads; updated under the pool's lock."""

    __slots__ = ("admitted", "completed", "expired", "rejected", "running")

    def __init__(self) -> None:
        self.admitted = 0
        self.completed = 0
        self.rejected = 0
        self.expired = 0
        self.running = 0


class WorkPool:
    """Run blocking callables on a bounded thread pool from async code.

    ``threads``: worker threads (``None`` or 0: the cores available).
    ``max_pending``: most jobs admitted at once, running plus queued (default:
    ``4 × threads``). Beyond it :meth:`run` raises :class:`Overloaded`.
    ``on_depth``: called with the new number of admitted jobs whenever it
    changes (the metrics layer's queue-depth gauge).
    ``on_job``: called after each job with the callable's name, the seconds it
    waited in the queue and the seconds it ran (stage metrics). Both hooks can
    also be set later as attributes.
    """

    def __init__(
        self,
        *,
        threads: int | None = None,
        max_pending: int | None = None,
        on_depth: Callable[[int], None] | None = None,
        on_job: Callable[[str, float, float], None] | None = None,
        name: str = "facematch-cpu",
    ) -> None:
        self.threads = threads or default_threads()
        if self.threads < 1:
            raise ValueError("threads must be at least 1")
        self.max_pending = max_pending if max_pending is not None else 4 * self.threads
        if self.max_pending < self.threads:
            raise ValueError("max_pending must be at least the number of threads")
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._pending = 0
        self._closed = False
        self.on_depth = on_depth
        self.on_job = on_job
        self.stats = PoolStats()
        # Smoothed job duration, for an honest Retry-After.
        self._mean_job_s = 0.1

    @property
    def pending(self) -> int:
        """Jobs admitted and not finished (running plus queued)."""
        return self._pending

    def retry_after_s(self) -> int:
        """Seconds after which the current backlog should have drained (at least 1)."""
        backlog_s = self._pending * self._mean_job_s / self.threads
        return max(1, math.ceil(backlog_s))

    def admit(self) -> Ticket:
        """Take a slot now or raise :class:`Overloaded`; release the ticket when done."""
        self._admit()
        return Ticket(self)

    def _admit(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("work pool is shut down")
            if self._pending >= self.max_pending:
                self.stats.rejected += 1
                raise Overloaded(
                    retry_after_s=self.retry_after_s(),
                    pending=self._pending,
                    limit=self.max_pending,
                )
            self._pending += 1
            self.stats.admitted += 1
            depth = self._pending
        if self.on_depth is not None:
            self.on_depth(depth)

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1
            depth = self._pending
        if self.on_depth is not None:
            self.on_depth(depth)

    def _job(
        self,
        ticket: Ticket,
        deadline: float | None,
        submitted: float,
        fn: Callable[..., T],
        *args: object,
    ) -> T:
        # Runs on a pool thread. A job whose caller already gave up is skipped.
        if deadline is not None and time.monotonic() >= deadline:
            with self._lock:
                self.stats.expired += 1
            ticket.release()
            raise DeadlineExceeded("deadline passed while the job was queued")
        with self._lock:
            self.stats.running += 1
        start = time.monotonic()
        try:
            return fn(*args)
        finally:
            ran_s = time.monotonic() - start
            with self._lock:
                self.stats.running -= 1
                self.stats.completed += 1
                self._mean_job_s = 0.8 * self._mean_job_s + 0.2 * ran_s
            ticket.release()
            if self.on_job is not None:
                self.on_job(getattr(fn, "__name__", "job"), start - submitted, ran_s)

    async def run(
        self,
        fn: Callable[..., T],
        *args: object,
        deadline: float | None = None,
        ticket: Ticket | None = None,
    ) -> T:
        """Run ``fn(*args)`` on the pool and await its result.

        ``ticket``: a slot taken earlier with :meth:`admit` (the request's);
        without one, a slot is taken now. ``deadline`` is a
        :func:`time.monotonic` instant. Raises :class:`Overloaded` at once
        when a slot is needed and the pool is full, and
        :class:`DeadlineExceeded` when the deadline passes first (the job is
        cancelled if it has not started; a started job finishes in the
        background, holding its slot, and its result is discarded).
        """
        if deadline is not None and time.monotonic() >= deadline:
            raise DeadlineExceeded("deadline passed before the job was submitted")
        if ticket is None:
            ticket = self.admit()  # this reference belongs to the job
        else:
            ticket._acquire()
        try:
            future: Future[T] = self._executor.submit(
                self._job, ticket, deadline, time.monotonic(), fn, *args
            )
        except RuntimeError:
            ticket.release()
            raise
        waiter = asyncio.wrap_future(future)
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            self._abandon(future, waiter, ticket)
            raise DeadlineExceeded("deadline passed before the job finished") from None
        except asyncio.CancelledError:
            # The request itself was cancelled (client gone, hard timeout).
            self._abandon(future, waiter, ticket)
            raise

    def _abandon(self, future: Future[T], waiter: asyncio.Future[T], ticket: Ticket) -> None:
        if future.cancel():
            # Never started: the job's reference is ours to drop.
            with self._lock:
                self.stats.expired += 1
            ticket.release()
        else:
            # Running: it finishes in the background and drops its own reference.
            waiter.add_done_callback(_swallow)

    def shutdown(self, *, wait: bool = True) -> None:
        """Refuse new jobs; with ``wait``, block until admitted jobs finish."""
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=wait, cancel_futures=not wait)


class BoundPool:
    """A pool seen from one request: its slot (ticket) and deadline applied to every job.

    It has the pool's ``run`` signature, so code written against
    :class:`WorkPool` runs a request's jobs in the request's own slot.
    """

    def __init__(self, pool: WorkPool, *, ticket: Ticket | None, deadline: float | None) -> None:
        self.pool = pool
        self.ticket = ticket
        self.deadline = deadline

    @property
    def pending(self) -> int:
        return self.pool.pending

    @property
    def max_pending(self) -> int:
        return self.pool.max_pending

    def retry_after_s(self) -> int:
        return self.pool.retry_after_s()

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        return await self.pool.run(fn, *args, deadline=self.deadline, ticket=self.ticket)


def _swallow(fut: asyncio.Future[Any]) -> None:
    # Retrieve the exception of an abandoned job so asyncio does not log it.
    with contextlib.suppress(BaseException):
        fut.exception()
