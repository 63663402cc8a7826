"""Refuse request bodies over the size limit before the app reads them.

A pure ASGI middleware. The limit depends on the path: only the face-match
endpoints take images (``max_body_bytes``); every other endpoint (token,
inquiry, fetch-images) takes a few fields, and gets :data:`SMALL_BODY_BYTES`.
A ``Content-Length`` over the limit is refused at once, unread. Otherwise the
body reaches the app as it arrives, counted chunk by chunk, and reading past
the limit raises the catalogue's 413 (chunked uploads have no
``Content-Length``). Nothing is buffered here: a route that refuses a request
from its headers (see :mod:`facematch.service.api.deps`) never reads the body at
all. Refusals are in English (the body was never parsed, so ``lang`` is
unknown) and close the connection rather than drain the rest of the body.
"""

from __future__ import annotations

from facematch.service.errors import BodyTooLarge, error_reply
from facematch.service.runtime.asgi import ASGIApp, Message, Receive, Scope, Send, send_error


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``; ``None`` when absent (chunked) or unparsable."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# Token requests, inquiries and fetch-images are a few short fields (form or JSON).
SMALL_BODY_BYTES = 64 * 1024


def body_too_large() -> BodyTooLarge:
    return BodyTooLarge()  # closes the connection rather than drain the rest


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
            await send_error(send, error_reply(body_too_large()))
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
