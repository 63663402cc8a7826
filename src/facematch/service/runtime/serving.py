"""Serving pieces the composition root (:mod:`facematch.service.app`) wires in.

* :class:`DeadlineMiddleware` — a per-request deadline (``request_timeout_s``,
  in ``request.state.deadline``): engine work still queued when it passes is
  dropped and the request gets the catalogue's ``request_timeout``; a hard
  backstop a few seconds later cuts off a request stuck anywhere else;
* :class:`InstrumentedMatcher` — the app's matcher, counting faces found and
  image outcomes for ``/metrics``;
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from facematch.engine.errors import EngineError
from facematch.engine.protocols import Matcher
from facematch.engine.types import MatchResult
from facematch.service.errors import DeadlineExceeded, error_reply
from facematch.service.runtime.asgi import ASGIApp, Message, Receive, Scope, Send, send_error
from facematch.service.runtime.metrics import ServiceMetrics

# A request stuck this long past its deadline (outside the pool: database, I/O) is cut off.
HARD_TIMEOUT_GRACE_S = 5.0

logger = logging.getLogger(__name__)

__all__ = ["DeadlineMiddleware", "InstrumentedMatcher"]


class DeadlineMiddleware:
    """Pure ASGI: stamp each request with its deadline; cut off requests stuck past it."""

    def __init__(
        self, app: ASGIApp, *, timeout_s: float, grace_s: float = HARD_TIMEOUT_GRACE_S
    ) -> None:
        self.app = app
        self.timeout_s = timeout_s
        self.grace_s = grace_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["deadline"] = time.monotonic() + self.timeout_s
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        timer = asyncio.timeout(self.timeout_s + self.grace_s)
        try:
            async with timer:
                await self.app(scope, receive, send_wrapper)
        except TimeoutError:
            if not timer.expired():
                raise  # a TimeoutError of the app's own, not our cut-off
            logger.warning("request cut off by the hard timeout", extra={"path": scope.get("path")})
            if not started:
                await send_error(send, error_reply(DeadlineExceeded()))


class InstrumentedMatcher:
    """The app's FaceMatcher, counting faces found and image outcomes for /metrics.

    Everything else is passed through unchanged; methods keep their names, so
    the pool's stage timings read ``engine_match``, ``engine_match_reference``.
    """

    def __init__(self, matcher: Matcher, metrics: ServiceMetrics) -> None:
        self._matcher = matcher
        self._metrics = metrics

    def __getattr__(self, name: str) -> object:
        return getattr(self._matcher, name)

    def _failed(self, exc: EngineError) -> None:
        self._metrics.observe_image(type(exc).__name__)

    @property
    def model_id(self) -> str:
        return self._matcher.model_id

    def match(self, first: bytes, second: bytes, /) -> MatchResult:
        try:
            result = self._matcher.match(first, second)
        except EngineError as exc:
            self._failed(exc)
            raise
        self._metrics.observe_image("ok", faces=1)
        self._metrics.observe_image("ok", faces=1)
        return result

    def match_reference(
        self, image: bytes, reference_embedding: np.ndarray, reference_model_id: str, /
    ) -> MatchResult:
        try:
            result = self._matcher.match_reference(image, reference_embedding, reference_model_id)
        except EngineError as exc:
            self._failed(exc)
            raise
        self._metrics.observe_image("ok", faces=1)
        return result
