"""Production serving pieces, installed on the app in one call.

:func:`install_serving` adds, around the routes of :mod:`facematch.service.app`:

* request ids and the JSON access log (:mod:`facematch.service.logging`);
* Prometheus metrics and ``/healthz`` ``/readyz`` ``/metrics``
  (:mod:`facematch.service.metrics`, :mod:`facematch.service.routes.health`);
  the work pool's queue depth and job timings, and faces found per image,
  are wired to the metrics once the lifespan has built the pool and engine;
* a per-request deadline (``request_timeout_s``, in ``request.state.deadline``):
  engine work still queued when it passes is dropped and the request gets the
  catalogue's ``request_timeout``; a hard backstop a few seconds later cuts
  off a request stuck anywhere else;
* graceful shutdown: on SIGTERM uvicorn stops accepting and waits up to
  ``graceful_shutdown_s`` for in-flight requests; then the lifespan marks the
  worker not ready and lets the pool drain before the database is closed.

Admission to the CPU work pool is :func:`engine_slot`, a route dependency: the
request takes one slot (running plus queued) *before* its token's trial is
consumed or a transaction is written; when none is free it is answered at once
with the catalogue's 429 ``overloaded`` and ``Retry-After``, with no side
effect. Its engine jobs then run in that slot (:class:`BoundPool`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from facematch.engine.errors import EngineError
from facematch.service.errors import CATALOGUE, ApiError
from facematch.service.logging import RequestIdMiddleware
from facematch.service.metrics import MetricsMiddleware, ServiceMetrics
from facematch.service.routes.health import MetricsAccess, Readiness, blocking_check
from facematch.service.routes.health import router as ops_router
from facematch.service.workpool import BoundPool, DeadlineExceeded, Overloaded, WorkPool
from facematch.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A request stuck this long past its deadline (outside the pool: database, I/O) is cut off.
HARD_TIMEOUT_GRACE_S = 5.0

logger = logging.getLogger(__name__)

__all__ = ["InstrumentedMatcher", "engine_slot", "install_serving"]


def _json_messages(status: int, body: dict[str, Any]) -> list[Message]:
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": raw},
    ]


class DeadlineMiddleware:
    """Pure ASGI: stamp each request with its deadline; cut off requests stuck past it."""

    def __init__(
        self, app: ASGIApp, *, timeout_s: float, grace_s: float = HARD_TIMEOUT_GRACE_S
    ) -> None:
        self.app = app
        self.timeout_s = timeout_s
        self.grace_s = grace_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["deadline"] = time.monotonic() + self.timeout_s
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        timer = asyncio.timeout(self.timeout_s + self.grace_s)
        try:
            async with timer:
                await self.app(scope, receive, send_wrapper)
        except TimeoutError:
            if not timer.expired():
                raise  # a TimeoutError of the app's own, not our cut-off
            logger.warning("request cut off by the hard timeout", extra={"path": scope.get("path")})
            if not started:
                error = ApiError(CATALOGUE["request_timeout"])
                for message in _json_messages(error.entry.status, error.body()):
                    await send(message)


@asynccontextmanager
async def engine_slot(request: Request, *, lang: str) -> AsyncIterator[BoundPool]:
    """Take a work-pool slot for this request, or refuse with 429 ``overloaded`` at once.

    Use in a generator dependency declared *before* the token dependency, so
    a refused request costs no trial::

        async def engine_capacity(request: Request, body: ServiceBodyDep):
            async with engine_slot(request, lang=body.lang) as pool:
                yield pool

    The slot is held until the request ends (and any job it started has finished).
    """
    pool: WorkPool = request.app.state.pool
    try:
        ticket = pool.admit()
    except Overloaded as exc:
        raise ApiError(
            "overloaded", lang=lang, headers={"Retry-After": str(exc.retry_after_s)}
        ) from exc
    try:
        yield BoundPool(pool, ticket=ticket, deadline=getattr(request.state, "deadline", None))
    finally:
        ticket.release()


class InstrumentedMatcher:
    """The app's FaceMatcher, counting faces found and image outcomes for /metrics.

    Everything else is passed through unchanged; methods keep their names, so
    the pool's stage timings read ``engine_match``, ``engine_match_reference``.
    """

    def __init__(self, matcher: Any, metrics: ServiceMetrics) -> None:
        self._matcher = matcher
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._matcher, name)

    def _failed(self, exc: EngineError) -> None:
        self._metrics.observe_image(type(exc).__name__)

    def match(self, first: bytes | str, second: bytes | str) -> Any:
        try:
            result = self._matcher.match(first, second)
        except EngineError as exc:
            self._failed(exc)
            raise
        self._metrics.observe_image("ok", faces=1)
        self._metrics.observe_image("ok", faces=1)
        return result

    def match_reference(self, image: bytes | str, *args: Any, **kwargs: Any) -> Any:
        try:
            result = self._matcher.match_reference(image, *args, **kwargs)
        except EngineError as exc:
            self._failed(exc)
            raise
        self._metrics.observe_image("ok", faces=1)
        return result


def _api_error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.entry.status, headers=error.headers)


async def _on_overloaded(_request: Request, exc: Exception) -> JSONResponse:
    retry = exc.retry_after_s if isinstance(exc, Overloaded) else 1
    error = ApiError(CATALOGUE["overloaded"], headers={"Retry-After": str(retry)})
    return _api_error_response(error)


async def _on_deadline(_request: Request, _exc: Exception) -> JSONResponse:
    return _api_error_response(ApiError(CATALOGUE["request_timeout"]))


# Seconds a client should wait after a database outage answer: long enough for a
# failover or restart to be noticed, short enough that recovery is seen quickly.
DATABASE_RETRY_AFTER_S = 2


async def _on_database_error(_request: Request, exc: Exception) -> JSONResponse:
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError) and not _is_disconnect(exc):
        raise exc  # a real bug (constraint, SQL error): the generic 500 handler logs it
    # Only the driver's class and first line: SQLAlchemy's text carries SQL and parameters.
    orig = getattr(exc, "orig", None) or exc
    first_line = (str(orig).strip().splitlines() or [""])[0][:200]
    logger.warning("database unavailable", extra={"error": f"{type(orig).__name__}: {first_line}"})
    error = ApiError(
        CATALOGUE["database_unavailable"], headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)}
    )
    return _api_error_response(error)


def _is_disconnect(exc: Exception) -> bool:
    from sqlalchemy.exc import InterfaceError, OperationalError

    if getattr(exc, "connection_invalidated", False):
        return True
    return isinstance(exc, OperationalError | InterfaceError)


def database_probe(app: FastAPI) -> Callable[[], None]:
    """``SELECT 1`` through the app's session factory."""
    from sqlalchemy import text

    def probe() -> None:
        with app.state.session_factory() as session:
            session.execute(text("SELECT 1"))

    return probe


def metrics_access(settings: Settings) -> MetricsAccess:
    """``/metrics`` behind its token when one is set; else open only in development."""
    if settings.metrics_token is not None:
        return MetricsAccess(enabled=True, token=settings.metrics_token.get_secret_value())
    return MetricsAccess(enabled=settings.environment == "development")


def install_serving(app: FastAPI, settings: Settings) -> None:
    """Add metrics, request ids, probes, deadlines and graceful shutdown to ``app``.

    Call once in ``create_app``, after the other middleware (these wrap it).
    The app's lifespan must set ``app.state.matcher``, ``app.state.pool`` and
    ``app.state.session_factory``; readiness checks the engine and database.
    """
    metrics = ServiceMetrics()
    readiness = Readiness(timeout_s=settings.readiness_timeout_s)
    app.state.metrics = metrics
    app.state.metrics_access = metrics_access(settings)
    app.include_router(ops_router)
    app.add_exception_handler(Overloaded, _on_overloaded)
    app.add_exception_handler(DeadlineExceeded, _on_deadline)
    # The database unreachable (restart, failover, network): 503 with Retry-After,
    # and the pool reconnects by itself (pool_pre_ping) once it is back.
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    app.add_exception_handler(DBAPIError, _on_database_error)
    app.add_exception_handler(PoolTimeoutError, _on_database_error)

    # Starlette wraps in reverse order of addition: the last added is outermost.
    app.add_middleware(DeadlineMiddleware, timeout_s=settings.request_timeout_s)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)

    def on_job(name: str, queued_s: float, ran_s: float) -> None:
        metrics.observe_stage("queue_wait", queued_s)
        metrics.observe_stage(f"engine_{name}", ran_s)

    inner_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[Any]:
        async with inner_lifespan(app_) as state:
            # The inner lifespan has opened the database, loaded the engine, built the pool.
            pool: WorkPool = app_.state.pool
            pool.on_depth = metrics.set_queue_depth
            pool.on_job = on_job
            app_.state.matcher = InstrumentedMatcher(app_.state.matcher, metrics)

            async def engine_loaded() -> None:
                if getattr(app_.state, "matcher", None) is None:
                    raise RuntimeError("face engine not loaded")

            readiness.add("engine", engine_loaded)
            readiness.add("database", blocking_check(database_probe(app_), name="database"))
            app_.state.readiness = readiness
            try:
                yield state
            finally:
                # uvicorn has stopped accepting and finished in-flight requests
                # (or given up after graceful_shutdown_s): report not-ready and
                # let queued engine work end before the inner lifespan closes.
                readiness.shutting_down = True
                await asyncio.to_thread(pool.shutdown, wait=True)

    app.router.lifespan_context = lifespan


def worker_app() -> FastAPI:
    """The uvicorn factory `facematch serve` runs in each worker process.

    Logging is configured here, in the worker, because worker processes are
    spawned fresh and inherit no logging setup from the supervisor.
    """
    from facematch.service.app import create_app
    from facematch.service.logging import configure_logging
    from facematch.service.malloc_arenas import limit_malloc_arenas
    from facematch.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, json_format=settings.log_format == "json")
    limit_malloc_arenas()  # before any worker thread exists (module docstring)
    return create_app(settings)
