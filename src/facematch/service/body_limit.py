"""Refuse request bodies over the size limit before the app reads them.

A pure ASGI middleware: a ``Content-Length`` over the limit is refused at once;
otherwise the body is read chunk by chunk, counting bytes, and refused as soon
as the count passes the limit (chunked uploads have no ``Content-Length``).
Accepted bodies are handed to the app unchanged. The refusal is the catalogue's
413 JSON body, in English (the body was never parsed, so ``lang`` is unknown).
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


def _content_length(scope: Scope) -> int | None:
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
    await send(
        {
            "type": "http.response.start",
            "status": error.entry.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = ApiError(CATALOGUE["body_too_large"])
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await send_api_error(send, too_large)
            return

        # Read (and count) the whole body first; the app would buffer it anyway.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_bytes:
                await send_api_error(send, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break

        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
