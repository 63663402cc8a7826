"""Readiness checks and the ``/metrics`` guard: the state behind the operational
endpoints of :mod:`facematch.service.api.routes.health`."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

ReadinessCheck = Callable[[], Awaitable[None]]

__all__ = ["MetricsAccess", "Readiness", "ReadinessCheck", "blocking_check"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricsAccess:
    """Who may read ``/metrics``: everyone, holders of ``token``, or nobody (404)."""

    enabled: bool
    token: str | None = None

    def allows(self, request: Request) -> bool:
        if not self.enabled:
            return False
        if self.token is None:
            return True
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        expected = self.token.encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode("utf-8", "replace"), expected
        )


class Readiness:
    """Named readiness checks, each an async callable that raises when not ready."""

    def __init__(self, *, timeout_s: float = 1.0) -> None:
        self.timeout_s = timeout_s
        self._checks: dict[str, ReadinessCheck] = {}
        self._last: dict[str, str] = {}
        self.shutting_down = False

    def add(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    async def evaluate(self) -> dict[str, str]:
        """``{name: "ok" | reason}`` for every check, run concurrently."""
        names = list(self._checks)
        results = await asyncio.gather(
            *(self._run(name, self._checks[name]) for name in names), return_exceptions=False
        )
        outcome = dict(zip(names, results, strict=True))
        if self.shutting_down:
            outcome["shutdown"] = "shutting down"
        return outcome

    async def _run(self, name: str, check: ReadinessCheck) -> str:
        try:
            await asyncio.wait_for(check(), self.timeout_s)
        except TimeoutError:
            self._log_change(name, f"timed out after {self.timeout_s:g} s")
            return "timed out"
        except Exception as exc:  # a failing check is reported, never raised
            first_line = (str(exc).strip().splitlines() or [""])[0]
            self._log_change(name, f"{type(exc).__name__}: {first_line[:200]}")
            return "failed"
        self._log_change(name, "ok")
        return "ok"

    def _log_change(self, name: str, outcome: str) -> None:
        # Probes run every few seconds: log a check's outcome when it changes, not each time.
        if self._last.get(name, "ok") != outcome:
            level = logging.INFO if outcome == "ok" else logging.WARNING
            logger.log(level, "readiness check changed", extra={"check": name, "outcome": outcome})
        self._last[name] = outcome


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
