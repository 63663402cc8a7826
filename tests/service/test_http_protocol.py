"""TCP_NODELAY on connections accepted from a listener bound the way uvicorn's
multi-worker supervisor binds it (``proto`` 0, so asyncio leaves Nagle on)."""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from uvicorn.server import ServerState

from facematch.service.http_protocol import NoDelayHTTPProtocol


async def _tiny_app(scope, receive, send):  # type: ignore[no-untyped-def]
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _nodelay_of_accepted_connection(protocol_class: type[asyncio.Protocol]) -> tuple[int, bytes]:
    """Serve one request with ``protocol_class`` on a listener from uvicorn's
    ``Config.bind_socket``; report TCP_NODELAY of the accepted socket and the reply."""
    config = uvicorn.Config(_tiny_app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    config.load()
    listener = config.bind_socket()
    seen: dict[str, int] = {}

    class Probe(protocol_class):  # type: ignore[misc, valid-type]
        def connection_made(self, transport):  # type: ignore[no-untyped-def]
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            seen["nodelay"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        state = ServerState()
        server = await loop.create_server(
            lambda: Probe(config=config, server_state=state, app_state={}), sock=listener
        )
        port = listener.getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        reply = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        server.close()
        await server.wait_closed()
        return reply

    reply = asyncio.run(scenario())
    return seen["nodelay"], reply


def test_accepted_connections_have_nagle_off() -> None:
    nodelay, reply = _nodelay_of_accepted_connection(NoDelayHTTPProtocol)
    assert nodelay != 0
    assert reply.startswith(b"HTTP/1.1 200")
    assert b"\r\nok\r\n" in reply


def test_the_listener_uvicorn_binds_is_the_case_being_fixed() -> None:
    # Why the fix exists: uvicorn's listener reports proto 0, which makes asyncio
    # skip TCP_NODELAY. If a uvicorn release binds with IPPROTO_TCP, this fails and
    # the workaround in facematch.service.http_protocol can go.
    config = uvicorn.Config(_tiny_app, host="127.0.0.1", port=0)
    listener = config.bind_socket()
    try:
        assert listener.proto != socket.IPPROTO_TCP
    finally:
        listener.close()
