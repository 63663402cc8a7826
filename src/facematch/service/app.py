"""The composition root: :func:`create_app` builds the whole service from explicit settings.

Nothing heavy happens at import or in :func:`create_app`. The one lifespan,
in order: image keys (the server refuses to start without usable ones) →
database (creating or upgrading the schema) → face engine (loaded once,
wrapped for metrics) → work pool → the use cases (:class:`Services`) →
readiness checks → housekeeping task. Shutdown runs backwards: readiness
reports shutting down, the pool drains, the task stops, the database closes.

Middleware, outermost first: request id and access log → metrics → deadline →
body limit → routes. Every error answer comes from the one handler of
:mod:`facematch.service.api.errors`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from facematch import __version__
from facematch.engine.protocols import Matcher
from facematch.service.api.demo import install_demo
from facematch.service.api.docs_pages import install_offline_docs
from facematch.service.api.errors import install_error_handler
from facematch.service.api.openapi import install_openapi
from facematch.service.api.routes import face_match, token, transactions
from facematch.service.api.routes.health import router as ops_router
from facematch.service.application.demo import DemoService
from facematch.service.application.face_match import FaceMatchService
from facematch.service.application.services import Services
from facematch.service.application.tokens import TokenService
from facematch.service.application.transactions import TransactionQueries
from facematch.service.runtime.body_limit import BodyLimitMiddleware
from facematch.service.runtime.logging import RequestIdMiddleware
from facematch.service.runtime.metrics import MetricsMiddleware, ServiceMetrics
from facematch.service.runtime.readiness import MetricsAccess, Readiness, blocking_check
from facematch.service.runtime.retention_task import start_purge_task, stop_purge_task
from facematch.service.runtime.serving import DeadlineMiddleware, InstrumentedMatcher
from facematch.service.runtime.workpool import WorkPool, default_threads
from facematch.settings import Settings, get_settings
from facematch.store import db
from facematch.store.db import ping
from facematch.store.vault import Vault, vault_from_settings

if TYPE_CHECKING:
    from facematch.engine.matcher import FaceMatcher

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Self-hosted face verification speaking the Valify Face Match API.

1. `POST /api/o/token/` (form) → an access token allowing a few calls ("trials").
2. `POST /api/v1/face/match/` (JSON, `Authorization: Bearer <token>`) with
   `first_img` (selfie), `second_img` (ID document) and `bundle_key`.

Errors are `{"message", "error_code"}` in English or Arabic (`lang`); see docs/api.md.
"""


def _load_matcher(settings: Settings) -> FaceMatcher:
    from facematch.engine.matcher import FaceMatcher

    matcher = FaceMatcher.from_settings(settings)
    if settings.warm_up:
        matcher.warm_up()
    return matcher


# Each request allocates thousands of short-lived objects (ORM rows, pydantic
# models, a JSON body carrying two images); with the default gen-0 threshold of 700 the
# collector runs several times per request and walks the long-lived models and
# modules each time it reaches the older generations.
GC_THRESHOLDS = (20_000, 20, 20)


def _settle_garbage_collector() -> None:
    """Move everything alive after start-up (modules, models, sessions) out of the
    collector's view and collect young objects less often; reference counting still
    frees almost everything at once, the collector only finds cycles."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def api_docs_enabled(settings: Settings) -> bool:
    """/docs, /redoc and /openapi.json: on in development unless turned off, off in
    production unless turned on (they map the API for anyone who reaches the port)."""
    if settings.api_docs is not None:
        return settings.api_docs
    return settings.environment == "development"


def create_app(settings: Settings | None = None, *, matcher: Matcher | None = None) -> FastAPI:
    """The service app. ``matcher`` lets tests share one loaded engine between apps
    (or use a stand-in: anything with the :class:`~facematch.engine.protocols.Matcher`
    shape)."""
    settings = settings or get_settings()
    metrics = ServiceMetrics()
    readiness = Readiness(timeout_s=settings.readiness_timeout_s)

    def on_job(name: str, queued_s: float, ran_s: float) -> None:
        metrics.observe_stage("queue_wait", queued_s)
        metrics.observe_stage(f"engine_{name}", ran_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state
        # Image keys first: without usable keys the server refuses to start.
        state.vault = vault_from_settings(settings)
        engine = db.create_db_engine(db.database_url(settings))
        await run_in_threadpool(db.migrate, engine)
        state.db_engine = engine
        state.session_factory = db.create_session_factory(engine)
        loaded: Matcher = (
            matcher if matcher is not None else await run_in_threadpool(_load_matcher, settings)
        )
        state.matcher = InstrumentedMatcher(loaded, metrics)
        threads = min(settings.cpu_threads or default_threads(), settings.max_inflight_matches)
        pool = WorkPool(threads=threads, max_pending=settings.max_inflight_matches)
        pool.on_depth = metrics.set_queue_depth
        pool.on_job = on_job
        state.pool = pool
        state.services = build_services(
            settings, vault=state.vault, matcher=state.matcher, pool=pool, app=app
        )

        async def engine_loaded() -> None:
            if getattr(state, "matcher", None) is None:
                raise RuntimeError("face engine not loaded")

        readiness.add("engine", engine_loaded)
        readiness.add("database", blocking_check(database_probe(app), name="database"))
        state.readiness = readiness
        purge_task = start_purge_task(
            state.session_factory,
            settings.purge_interval_s,
            pending_after_s=settings.request_timeout_s + settings.pending_grace_s,
        )
        _settle_garbage_collector()
        try:
            yield
        finally:
            # uvicorn has stopped accepting and finished in-flight requests (or
            # given up after graceful_shutdown_s): report not-ready and let queued
            # engine work end before the database is closed.
            readiness.shutting_down = True
            await asyncio.to_thread(pool.shutdown, wait=True)
            await stop_purge_task(purge_task)
            engine.dispose()

    docs = api_docs_enabled(settings)
    app = FastAPI(
        title="facematch",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        redirect_slashes=False,  # both slash forms are routed; never answer with a redirect
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.metrics_access = metrics_access(settings)
    app.include_router(token.router)
    app.include_router(face_match.router)
    app.include_router(transactions.router)
    app.include_router(ops_router)
    install_openapi(app)
    install_offline_docs(app)
    install_demo(app, settings)
    install_error_handler(app)
    # Starlette wraps in reverse order of addition: the last added is outermost. Request
    # ids and metrics are outside the body limit, so even a 413 carries an id and is counted.
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        large_body_prefixes=face_match.IMAGE_PATH_PREFIXES,
    )
    app.add_middleware(DeadlineMiddleware, timeout_s=settings.request_timeout_s)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)
    return app


def build_services(
    settings: Settings, *, vault: Vault, matcher: Matcher, pool: WorkPool, app: FastAPI
) -> Services:
    """The use cases, built once. Their sessions come from the app's current session
    factory (tests swap it to simulate an outage)."""

    def sessions() -> Session:
        session: Session = app.state.session_factory()
        return session

    return Services(
        settings=settings,
        sessions=sessions,
        vault=vault,
        matcher=matcher,
        pool=pool,
        face_match=FaceMatchService(
            matcher=matcher,
            vault=vault,
            sessions=sessions,
            max_image_bytes=settings.max_image_bytes,
        ),
        tokens=TokenService(
            sessions=sessions, refresh_lifetime_s=settings.refresh_token_lifetime_s
        ),
        transactions=TransactionQueries(vault=vault, sessions=sessions),
        demo=DemoService(
            sessions=sessions, vault=vault, refresh_lifetime_s=settings.refresh_token_lifetime_s
        ),
    )


def database_probe(app: FastAPI) -> Callable[[], None]:
    """A trivial query through the app's session factory."""

    def probe() -> None:
        with app.state.session_factory() as session:
            ping(session)

    return probe


def metrics_access(settings: Settings) -> MetricsAccess:
    """``/metrics`` behind its token when one is set; else open only in development."""
    if settings.metrics_token is not None:
        return MetricsAccess(enabled=True, token=settings.metrics_token.get_secret_value())
    return MetricsAccess(enabled=settings.environment == "development")


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory`` (settings from the environment)."""
    return create_app(get_settings())


def worker_app() -> FastAPI:
    """The uvicorn factory `facematch serve` runs in each worker process.

    Logging is configured here, in the worker, because worker processes are
    spawned fresh and inherit no logging setup from the supervisor.
    """
    from facematch.service.runtime.logging import configure_logging
    from facematch.service.runtime.malloc_arenas import limit_malloc_arenas

    settings = get_settings()
    configure_logging(settings.log_level, json_format=settings.log_format == "json")
    limit_malloc_arenas()  # before any worker thread exists (malloc_arenas docstring)
    return create_app(settings)
