"""Structured JSON logs with a request id, and a filter that keeps secrets out of them.

* :class:`JsonFormatter` writes one JSON object per line: ``ts``, ``level``,
  ``logger``, ``message``, ``request_id`` (when inside a request), any
  ``extra=`` fields, and ``exc`` for tracebacks.
* :class:`RedactionFilter` runs on the handler, so it sees every record,
  including those of uvicorn and libraries: it removes anything that looks
  like image data (data URLs, long base64 runs), bearer tokens, and values of
  secret-named fields (``access_token``, ``bundle_key``, ``client_secret``,
  ``password``, …), in the message, its arguments, extras and tracebacks.
  Redaction is the safety net; code should not log such values at all.
* :class:`RequestIdMiddleware` (pure ASGI) takes the client's ``X-Request-ID``
  when it is well-formed or makes one, exposes it to every log record of the
  request through a context variable, echoes it in the response, and writes
  one access-log line per request (route template, status, duration; never
  the query string or body).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
import time
import traceback
import uuid
from typing import Any

from facematch.service.runtime.asgi import ASGIApp, Message, Receive, Scope, Send
from facematch.service.runtime.metrics import method_label

REQUEST_ID_HEADER = "x-request-id"
LOGGED_PATH_CHARS = 200
ACCESS_LOGGER = "facematch.access"

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "facematch_request_id", default=None
)

__all__ = [
    "JsonFormatter",
    "RedactionFilter",
    "RequestIdMiddleware",
    "configure_logging",
    "redact",
    "request_id_var",
]

# --- redaction ----------------------------------------------------------------

REDACTED = "[REDACTED]"
SENSITIVE_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "token",
        "bundle_key",
        "client_secret",
        "password",
        "secret",
        "authorization",
        "authentication",
        "api_key",
        "hmac",
        "key",
        "private_key",
        "first_img",
        "second_img",
        "image",
        "img",
    }
)

_DATA_URL = re.compile(r"data:[\w.+/-]*;base64,[A-Za-z0-9+/=\r\n]+", re.IGNORECASE)
_BEARER = re.compile(r"\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
# key=value, key: value, "key": "value" for secret-named keys. Generic words
# ("image", "key") are left out here: prose such as "image: truncated" must survive.
_TEXT_KEYS = SENSITIVE_KEYS - {"image", "img", "key"}
_KEY_VALUE = re.compile(
    r"(?i)\b(" + "|".join(sorted(_TEXT_KEYS, key=len, reverse=True)) + r")"
    r"(\"?'?\s*[:=]\s*\"?'?)([^\s\"'&,;}\]\[][^\s\"'&,;}\]]*)"
)
# Image bytes in base64 are long runs of the base64 alphabet; 120 characters is
# 90 bytes, far shorter than any image and longer than ids we want to keep.
_LONG_BASE64 = re.compile(r"[A-Za-z0-9+/]{120,}={0,2}")
# Opaque secrets (tokens, bundle keys) are long url-safe runs; request and
# transaction ids (32 hex characters) are shorter and stay readable.
_OPAQUE = re.compile(r"(?<![A-Za-z0-9_\-])[A-Za-z0-9_\-]{40,}(?![A-Za-z0-9_\-])")


def redact(text: str) -> str:
    """``text`` with image data, bearer tokens and secret values replaced."""
    text = _DATA_URL.sub("[REDACTED image]", text)
    text = _LONG_BASE64.sub(lambda m: f"[REDACTED {len(m.group(0))} base64 chars]", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _OPAQUE.sub(REDACTED, text)


def _redact_value(key: str, value: Any) -> Any:
    if key.lower() in SENSITIVE_KEYS:
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes | bytearray):
        return f"[{len(value)} bytes]"
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value("", v) for v in value]
    return value


# Attributes every LogRecord has; anything else came in through ``extra=``.
_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName", "request_id", "color_message"}
)


class RedactionFilter(logging.Filter):
    """Rewrite each record so it carries no image data, tokens or keys."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        for key in list(record.__dict__):
            if key not in _RECORD_ATTRS:
                record.__dict__[key] = _redact_value(key, record.__dict__[key])
        if record.exc_info and record.exc_info[0] is not None:
            # Exception messages may quote input; format and redact them now.
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class RequestIdFilter(logging.Filter):
    """Stamp each record with the current request id (``None`` outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extras become top-level fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str | int = "INFO", *, json_format: bool = True) -> None:
    """Send every logger's records, redacted, to stderr (JSON lines by default).

    Idempotent: a second call replaces the handler it installed before.
    uvicorn's loggers are made to propagate here; its access log is silenced
    because :class:`RequestIdMiddleware` writes a better one.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_facematch", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._facematch = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactionFilter())
    handler.setFormatter(
        JsonFormatter()
        if json_format
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
    # Alembic narrates every startup's schema check at INFO; keep its warnings only.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    # python-multipart warns about each malformed form a client sends: the client's
    # mistake, already answered 400 and counted; not a line per request to keep.
    logging.getLogger("python_multipart").setLevel(max(logging.ERROR, root.level))
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True


# --- request id middleware ----------------------------------------------------

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER.encode():
            text = value.decode("latin-1")
            return text if _VALID_REQUEST_ID.match(text) else None
    return None


class RequestIdMiddleware:
    """Assign a request id, echo it as ``X-Request-ID``, and log one access line."""

    def __init__(self, app: ASGIApp, *, logger: logging.Logger | None = None) -> None:
        self.app = app
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None)
            self.logger.info(
                "request",
                extra={
                    "method": method_label(scope),
                    "route": route,
                    # Unmatched paths are the client's text: logged, but bounded.
                    "path": scope.get("path", "")[:LOGGED_PATH_CHARS] if route is None else None,
                    "status": status,
                    "duration_ms": round(1000 * (time.perf_counter() - start), 1),
                },
            )
            request_id_var.reset(token)
