"""uvicorn's HTTP/1.1 protocol with Nagle's algorithm off on every connection.

With ``--workers N`` uvicorn binds the listening socket itself and leaves its
``proto`` at 0; asyncio turns ``TCP_NODELAY`` on only for sockets that report
``IPPROTO_TCP``, so every accepted connection keeps Nagle's algorithm. The
response is written in two sends (head, then body); on a keep-alive connection
the body then waits for the client's delayed ACK, ~40 ms on Linux, on every
request after the first (measured here: 44 ms for ``/healthz`` with two
workers, 1.4 ms with one). Upstream: uvicorn issue 3149. Setting the option
when each connection is made fixes it whatever the listener looks like.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from uvicorn.protocols.http.auto import AutoHTTPProtocol

__all__ = ["NoDelayHTTPProtocol", "disable_nagle"]


def disable_nagle(transport: asyncio.BaseTransport) -> None:
    """Set ``TCP_NODELAY`` on the transport's socket; nothing for non-TCP sockets."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """The protocol uvicorn would pick (httptools or h11), with ``TCP_NODELAY`` set."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        disable_nagle(transport)
        super().connection_made(transport)
