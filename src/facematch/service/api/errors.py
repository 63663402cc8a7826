"""The one exception handler: every error answer of the app is written here.

Errors of the service's tree and of the engine are answered in the request's
context: ``lang`` (``request.state.lang``, set once the body's or the form's
language is known, or from ``Accept-Language`` for a refusal made before the
body is read) and the :class:`~facematch.service.application.calls.CallRecord`
(``request.state.call``: trials left, transaction id). Exceptions from outside
the tree (the framework's routing and validation, a client gone mid-body, the
database out of reach, a bug) are translated into the tree first and answered
without that context, as the request failed before or outside it.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from facematch.engine.errors import EngineError
from facematch.service.application.calls import CallRecord
from facematch.service.errors import (
    DEFAULT_LANG,
    BadRequest,
    DatabaseUnavailable,
    InternalError,
    InvalidField,
    MissingField,
    ServiceError,
    error_for_status,
    error_reply,
)

logger = logging.getLogger(__name__)

# The classes the handler is installed for: the two trees and the foreign roots.
HANDLED: tuple[type[Exception], ...] = (
    ServiceError,
    EngineError,
    StarletteHTTPException,
    RequestValidationError,
    ClientDisconnect,
    DBAPIError,
    PoolTimeoutError,
    Exception,
)


def _is_disconnect(exc: Exception) -> bool:
    if getattr(exc, "connection_invalidated", False):
        return True
    return isinstance(exc, OperationalError | InterfaceError)


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", None) or uuid.uuid4().hex


def _translated(request: Request, exc: Exception) -> tuple[Exception, dict[str, str]]:
    """A foreign exception as an error of the tree, and extra headers."""
    if isinstance(exc, StarletteHTTPException):
        return error_for_status(exc.status_code), dict(getattr(exc, "headers", None) or {})
    if isinstance(exc, RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [part for part in first.get("loc", ()) if part not in ("body", "query", "header")]
        field = str(loc[0]) if loc else None
        return (MissingField(field) if first.get("type") == "missing" else InvalidField(field)), {}
    if isinstance(exc, ClientDisconnect):
        # The client left mid-body: nobody reads this answer, and it is not our fault
        # (no 500, no traceback in the log).
        return BadRequest(close_connection=True), {}
    if isinstance(exc, PoolTimeoutError) or (isinstance(exc, DBAPIError) and _is_disconnect(exc)):
        # Only the driver's class and first line: SQLAlchemy's text carries SQL and
        # parameters. The pool reconnects by itself (pool_pre_ping) once it is back.
        orig = getattr(exc, "orig", None) or exc
        first_line = (str(orig).strip().splitlines() or [""])[0][:200]
        logger.warning(
            "database unavailable", extra={"error": f"{type(orig).__name__}: {first_line}"}
        )
        return DatabaseUnavailable(), {}
    # A bug (a constraint, an SQL error, anything unforeseen). Only the exception and
    # ids are logged: never the body (images, keys).
    request_id = _request_id(request)
    logger.error(
        "unhandled error",
        exc_info=exc,
        extra={"request_id": request_id, "path": request.url.path},
    )
    return InternalError(), {"X-Request-ID": request_id}


async def handle_error(request: Request, exc: Exception) -> Response:
    """Answer ``exc`` with its catalogue entry (see the module docstring)."""
    context: dict[str, Any] = {}
    error: Exception = exc
    extra: dict[str, str] = {}
    if isinstance(exc, ServiceError | EngineError):
        call: CallRecord | None = getattr(request.state, "call", None)
        context["lang"] = getattr(request.state, "lang", DEFAULT_LANG)
        if call is not None:
            context["trials_remaining"] = call.trials_remaining
            context["transaction_id"] = call.transaction_id
        context["request_id"] = _request_id(request)
    else:
        error, extra = _translated(request, exc)
        if isinstance(error, InternalError):
            context["request_id"] = _request_id(request)
    reply = error_reply(error, **context)
    headers = {**dict(reply.headers), **extra}
    return Response(
        reply.body, status_code=reply.status, headers=headers, media_type="application/json"
    )


def install_error_handler(app: FastAPI) -> None:
    for cls in HANDLED:
        app.add_exception_handler(cls, handle_error)
