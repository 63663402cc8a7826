"""Refuse request bodies over the size limit before the app reads them.

A pure ASGI middleware. The limit depends on the path: only the face-match
endpoints take images (``max_body_bytes``); every other endpoint (token,
inquiry, fetch-images) takes a few fields, and gets :data:`SMALL_BODY_BYTES`.
A ``Content-Length`` over the limit is refused at once, unread. Otherwise the
body reaches the app as it arrives, counted chunk by chunk, and reading past
the limit raises the catalogue's 413 (chunked uploads have no
``Content-Length``). Nothing is buffered here: a route that refuses a request
from its headers (see :mod:`facematch.service.auth`) never reads the body at
all. Refusals are in English (the body was never parsed, so ``lang`` is
unknown) and close the connection rather than drain the rest of the body.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from facematch.service.errors import CATALOGUE, ApiError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``; ``None`` when absent (chunked) or unparsable."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def send_api_error(send: Send, error: ApiError) -> None:
    """Write a catalogue error as a complete JSON response."""
    body = json.dumps(error.body(), ensure_ascii=False).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items()]
    await send({"type": "http.response.start", "status": error.entry.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# Token requests, inquiries and fetch-images are a few short fields (form or JSON).
SMALL_BODY_BYTES = 64 * 1024
CLOSE = {"Connection": "close"}


def body_too_large() -> ApiError:
    return ApiError(CATALOGUE["body_too_large"], headers=CLOSE)


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        large_body_prefixes: tuple[str, ...] = (),
        small_body_bytes: int = SMALL_BODY_BYTES,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.large_body_prefixes = large_body_prefixes
        self.small_body_bytes = min(small_body_bytes, max_body_bytes)

    def limit_for(self, path: str) -> int:
        if path.startswith(self.large_body_prefixes):
            return self.max_body_bytes
        return self.small_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            await send_api_error(send, body_too_large())
            return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the app's body read; the app's handler answers 413.
                    raise body_too_large()
            return message

        await self.app(scope, counting_receive, send)
