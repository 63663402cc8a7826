"""The ASGI type aliases every pure-ASGI piece uses, and its one error writer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from facematch.service.errors import ErrorReply

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_error(send: Send, reply: ErrorReply) -> None:
    """Write ``reply`` as a complete response (for middleware outside the app's handler)."""
    headers = [(name.lower().encode(), value.encode()) for name, value in reply.all_headers()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
