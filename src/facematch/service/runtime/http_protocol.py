"""uvicorn's HTTP/1.1 protocol with the connection-level guards facematch needs.

Nagle's algorithm off
    With ``--workers N`` uvicorn binds the listening socket itself and leaves
    its ``proto`` at 0; asyncio turns ``TCP_NODELAY`` on only for sockets that
    report ``IPPROTO_TCP``, so every accepted connection keeps Nagle's
    algorithm. The response is written in two sends (head, then body); on a
    keep-alive connection the body then waits for the client's delayed ACK
    (docs/performance.md). Upstream: uvicorn issue 3149. Setting the option when
    each connection is made fixes it whatever the listener looks like.

A deadline for every request head
    uvicorn times out idle keep-alive connections only after a response, and
    stops that timer at the first byte of the next request; a connection that
    never sends a complete request head (silent, or one byte at a time) is
    otherwise kept forever. Each connection must finish a request head within
    ``header_timeout_s`` of opening and of each response, or it is closed.

A bound on the request head
    h11 already refuses a head over its incomplete-event limit; the same bound
    is enforced here whatever parser uvicorn picks (httptools has none).

A connection limit per worker
    Beyond ``max_connections`` open connections a new one gets the catalogue's
    503 JSON at once and is closed, before anything of it is read. uvicorn's
    own ``limit_concurrency`` would answer plain text, after reading the head.

The limits come from :func:`facematch.settings.get_settings` in the worker
process (uvicorn spawns workers and imports this class by name).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

__all__ = ["ConnectionLimits", "GuardedHTTPProtocol", "disable_nagle"]


def disable_nagle(transport: asyncio.BaseTransport) -> None:
    """Set ``TCP_NODELAY`` on the transport's socket; nothing for non-TCP sockets."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float
    max_head_bytes: int
    max_connections: int


@lru_cache(maxsize=1)
def connection_limits() -> ConnectionLimits:
    from facematch.settings import get_settings

    settings = get_settings()
    return ConnectionLimits(
        header_timeout_s=settings.header_timeout_s,
        max_head_bytes=settings.max_header_bytes,
        max_connections=settings.max_connections,
    )


@lru_cache(maxsize=1)
def _too_many_connections_response() -> bytes:
    """The catalogue's 503, as raw bytes written on the transport (there is no app yet)."""
    from facematch.service.errors import TooManyConnections, error_reply

    reply = error_reply(TooManyConnections(close_connection=True))
    head = f"HTTP/1.1 {reply.status} Service Unavailable\r\n" + "".join(
        f"{name.lower()}: {value}\r\n" for name, value in reply.all_headers()
    )
    return (head + "\r\n").encode("ascii") + reply.body


class GuardedHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """The protocol uvicorn would pick (httptools or h11), with the guards above."""

    limits: ConnectionLimits | None = None  # tests set their own; else from settings

    def connection_made(self, transport: asyncio.Transport) -> None:
        disable_nagle(transport)
        limits = self.limits or connection_limits()
        self._limits = limits
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        over_limit = len(self.connections) >= limits.max_connections
        super().connection_made(transport)
        if over_limit:
            transport.write(_too_many_connections_response())
            transport.close()
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        in_head = before is None or before.response_complete
        super().data_received(data)
        if not in_head:
            return
        if self.cycle is not before:
            self._head_bytes = 0  # a new request head was parsed
            return
        self._head_bytes += len(data)
        if self._head_bytes > self._limits.max_head_bytes:
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._head_bytes = 0
        if not self.transport.is_closing():
            self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(
            self._limits.header_timeout_s, self._head_timed_out, self.cycle
        )

    def _cancel_head_timer(self) -> None:
        timer: asyncio.TimerHandle | None = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_timed_out(self, cycle_then: Any) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        waiting = cycle_then is None or cycle_then.response_complete
        if self.cycle is cycle_then and waiting:
            self.transport.close()  # no request head since the timer was armed
