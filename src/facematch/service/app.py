"""The FastAPI application: :func:`create_app` builds it from explicit settings.

Nothing heavy happens at import or in :func:`create_app`; the lifespan opens
the database (creating or upgrading the schema), loads the face engine once and
starts the bounded work pool the engine runs on.

Every error response, including the framework's own (404, 405, validation),
comes from the one catalogue in :mod:`facematch.service.errors`.
"""

from __future__ import annotations

import gc
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from facematch import __version__
from facematch.service.body_limit import BodyLimitMiddleware
from facematch.service.errors import CATALOGUE, ApiError, OAuthError, entry_for_status
from facematch.service.retention_task import start_purge_task, stop_purge_task
from facematch.service.routes import face_match, token, transactions
from facematch.service.serving import install_serving
from facematch.service.workpool import WorkPool, default_threads
from facematch.settings import Settings, get_settings
from facematch.store import db
from facematch.store.vault import vault_from_settings

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
# models, a 130 KB JSON body); with the default gen-0 threshold of 700 the
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


def create_app(settings: Settings | None = None, *, matcher: FaceMatcher | None = None) -> FastAPI:
    """The service app. ``matcher`` lets tests share one loaded engine between apps."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Image keys first: without usable keys the server refuses to start.
        app.state.vault = vault_from_settings(settings)
        engine = db.create_db_engine(db.database_url(settings))
        await run_in_threadpool(db.migrate, engine)
        app.state.db_engine = engine
        app.state.session_factory = db.create_session_factory(engine)
        app.state.matcher = matcher or await run_in_threadpool(_load_matcher, settings)
        threads = min(settings.cpu_threads or default_threads(), settings.max_inflight_matches)
        app.state.pool = WorkPool(threads=threads, max_pending=settings.max_inflight_matches)
        purge_task = start_purge_task(
            app.state.session_factory,
            settings.purge_interval_s,
            pending_after_s=settings.request_timeout_s + settings.pending_grace_s,
        )
        _settle_garbage_collector()
        try:
            yield
        finally:
            await stop_purge_task(purge_task)
            app.state.pool.shutdown(wait=True)
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
    app.include_router(token.router)
    app.include_router(face_match.router)
    app.include_router(transactions.router)
    _install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        large_body_prefixes=face_match.IMAGE_PATH_PREFIXES,
    )
    # Request ids, metrics, probes, deadlines, graceful shutdown: outside the body limit,
    # so even a 413 carries a request id and is counted.
    install_serving(app, settings)
    return app


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        body = exc.body()
        if exc.entry.status >= 500:
            # Server-side faults: the id the administrator finds in the logs.
            body["request_id"] = getattr(request.state, "request_id", None) or uuid.uuid4().hex
        return _json(exc.entry.status, body, exc.headers)

    @app.exception_handler(OAuthError)
    async def oauth_error(_request: Request, exc: OAuthError) -> JSONResponse:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache", **(exc.headers or {})}
        return _json(exc.entry.status, exc.body(), headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = ApiError(entry_for_status(exc.status_code))
        return _json(error.entry.status, error.body(), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [part for part in first.get("loc", ()) if part not in ("body", "query", "header")]
        name = "missing_field" if first.get("type") == "missing" else "invalid_field"
        error = ApiError(name, field=str(loc[0]) if loc else None)
        return _json(error.entry.status, error.body())

    @app.exception_handler(ClientDisconnect)
    async def client_gone(_request: Request, _exc: ClientDisconnect) -> JSONResponse:
        # The client left mid-body: nobody reads this answer, and it is not our fault
        # (no 500, no traceback in the log).
        error = ApiError(CATALOGUE["bad_request"])
        return _json(error.entry.status, error.body(), {"Connection": "close"})

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
        # Only the exception and ids are logged: never the body (images, keys).
        logger.error(
            "unhandled error",
            exc_info=exc,
            extra={"request_id": request_id, "path": request.url.path},
        )
        body = ApiError(CATALOGUE["internal_error"]).body() | {"request_id": request_id}
        return _json(500, body, {"X-Request-ID": request_id})


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory`` (settings from the environment)."""
    return create_app(get_settings())
