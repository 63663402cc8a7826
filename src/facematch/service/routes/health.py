"""Operational endpoints: ``/healthz``, ``/readyz`` and ``/metrics``.

* ``/healthz`` — the process is alive and its event loop answers. It checks
  nothing else, so an orchestrator never restarts a worker for a database
  outage it cannot fix.
* ``/readyz`` — this worker should receive traffic: every readiness check
  (models loaded, database reachable, not shutting down) passes within a short
  timeout. 200 ``{"status": "ready", "checks": {...}}`` or 503
  ``{"status": "not_ready", ...}`` naming the check that failed.
* ``/metrics`` — Prometheus text exposition (see :mod:`facematch.service.metrics`).

None of them needs a token or runs on the CPU work pool, so probes still
answer while the pool is saturated.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from facematch.service.metrics import CONTENT_TYPE_LATEST, ServiceMetrics

ReadinessCheck = Callable[[], Awaitable[None]]

router = APIRouter(tags=["operations"])

__all__ = ["Readiness", "blocking_check", "router"]


class Readiness:
    """Named readiness checks, each an async callable that raises when not ready."""

    def __init__(self, *, timeout_s: float = 1.0) -> None:
        self.timeout_s = timeout_s
        self._checks: dict[str, ReadinessCheck] = {}
        self.shutting_down = False

    def add(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    async def evaluate(self) -> dict[str, str]:
        """``{name: "ok" | reason}`` for every check, run concurrently."""
        names = list(self._checks)
        results = await asyncio.gather(
            *(self._run(self._checks[name]) for name in names), return_exceptions=False
        )
        outcome = dict(zip(names, results, strict=True))
        if self.shutting_down:
            outcome["shutdown"] = "shutting down"
        return outcome

    async def _run(self, check: ReadinessCheck) -> str:
        try:
            await asyncio.wait_for(check(), self.timeout_s)
        except TimeoutError:
            return f"timed out after {self.timeout_s:g} s"
        except Exception as exc:  # a failing check is reported, never raised
            first_line = (str(exc).strip().splitlines() or [""])[0]
            return f"{type(exc).__name__}: {first_line[:200]}"
        return "ok"


def blocking_check(fn: Callable[[], Any], *, name: str = "check") -> ReadinessCheck:
    """Wrap a blocking probe (e.g. ``SELECT 1``) so it runs on its own thread.

    One probe at a time: while an earlier one still hangs (an unreachable
    database can block a connect for longer than the readiness timeout), later
    calls fail at once instead of piling up threads.
    """
    busy = threading.Lock()

    def guarded() -> None:
        try:
            fn()
        finally:
            busy.release()

    async def check() -> None:
        if not busy.acquire(blocking=False):
            raise RuntimeError(f"previous {name} probe has not returned yet")
        loop = asyncio.get_running_loop()
        # A dedicated daemon thread, not the default executor or the CPU pool:
        # a hung probe must not take a slot from anything else.
        future: asyncio.Future[None] = loop.create_future()

        def target() -> None:
            try:
                guarded()
            except BaseException as exc:
                _notify(loop, _set_exception, future, exc)
            else:
                _notify(loop, _set_result, future)

        threading.Thread(target=target, name=f"readyz-{name}", daemon=True).start()
        await asyncio.shield(future)

    return check


def _notify(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    # The loop may be gone by the time a hung probe returns (shutdown, tests).
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)


def _set_result(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _set_exception(future: asyncio.Future[None], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    readiness: Readiness | None = getattr(request.app.state, "readiness", None)
    if readiness is None:
        return JSONResponse({"status": "not_ready", "checks": {"startup": "not finished"}}, 503)
    checks = await readiness.evaluate()
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    registry: ServiceMetrics = request.app.state.metrics
    # Reading the multiprocess files is file I/O; keep it off the event loop.
    body = await asyncio.to_thread(registry.expose)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
