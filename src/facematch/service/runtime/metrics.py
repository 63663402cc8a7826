"""Prometheus metrics for the HTTP service, and the ASGI middleware that records them.

Each app owns a :class:`ServiceMetrics` with its own ``CollectorRegistry``
(never prometheus-client's global one), so tests can build several apps in one
process without "Duplicated timeseries" errors.

Several worker processes
------------------------
``facematch serve --workers N`` runs N uvicorn worker processes behind one
listening socket; a scrape of ``/metrics`` lands on whichever worker accepts
it. Per-worker numbers would then jump between scrapes (counters would appear
to reset), so with several workers facematch uses prometheus-client's
*multiprocess mode*: ``facematch serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at
a fresh, empty directory before the workers start, every worker writes its
values to memory-mapped files there, and ``/metrics`` on any worker reads and
sums all of them. Counters and histograms are summed over all workers ever
started (so a killed worker's requests are not lost); gauges use ``livesum``
(only live workers count). Files of workers that died are cleaned up when the
next worker starts. Process metrics (RSS, CPU) are not available in
multiprocess mode; use the node exporter or ``bench/load.py`` for those.

Without ``PROMETHEUS_MULTIPROC_DIR`` (one worker, tests) the app's own
registry is exposed directly, with the standard process metrics.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from facematch.service.runtime.asgi import ASGIApp, Message, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE = "<unmatched>"

# Request latency: from well under a match (health probes, refusals) to past the request timeout.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STAGE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

__all__ = [
    "CONTENT_TYPE_LATEST",
    "MetricsMiddleware",
    "ServiceMetrics",
    "method_label",
    "multiprocess_dir",
]


def multiprocess_dir() -> Path | None:
    """The multiprocess directory when multiprocess mode is on, else ``None``."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def _cleanup_dead_workers(directory: Path) -> None:
    """Drop live-gauge files of processes that no longer exist (killed workers)."""
    from prometheus_client import multiprocess

    pids: set[int] = set()
    for path in directory.glob("gauge_live*_*.db"):
        match = re.search(r"_(\d+)\.db$", path.name)
        if match:
            pids.add(int(match.group(1)))
    for pid in pids:
        if not Path(f"/proc/{pid}").exists():
            multiprocess.mark_process_dead(pid, str(directory))


class ServiceMetrics:
    """Every metric the service exports, registered on one registry per app."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.multiprocess = multiprocess_dir()
        if self.multiprocess is not None:
            _cleanup_dead_workers(self.multiprocess)
        else:
            ProcessCollector(registry=self.registry)
        reg = self.registry
        self.requests = Counter(
            "facematch_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=reg,
        )
        self.latency = Histogram(
            "facematch_http_request_duration_seconds",
            "Time from request start to the last byte of the response.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.in_progress = Gauge(
            "facematch_http_requests_in_progress",
            "Requests being handled right now.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.errors = Counter(
            "facematch_errors",
            'Error responses by catalogue error_code ("none" when the body has none).',
            ["status", "error_code"],
            registry=reg,
        )
        self.stage = Histogram(
            "facematch_engine_stage_duration_seconds",
            "Time spent per processing stage (queue wait, engine work per call kind, store).",
            ["stage"],
            buckets=STAGE_BUCKETS_S,
            registry=reg,
        )
        self.queue_depth = Gauge(
            "facematch_workpool_pending_jobs",
            "CPU jobs admitted to the work pool and not finished (running plus queued).",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.faces = Counter(
            "facematch_faces_detected",
            "Faces found in request images (one per image that passed detection).",
            registry=reg,
        )
        self.images = Counter(
            "facematch_images",
            "Request images processed, by outcome (ok, or the engine error's name).",
            ["outcome"],
            registry=reg,
        )

    # --- recording helpers ----------------------------------------------------
    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage.labels(stage).observe(seconds)

    def observe_image(self, outcome: str, *, faces: int = 0) -> None:
        self.images.labels(outcome).inc()
        if faces:
            self.faces.inc(faces)

    def set_queue_depth(self, depth: int) -> None:
        self.queue_depth.set(depth)

    # --- exposition -----------------------------------------------------------
    def expose(self) -> bytes:
        """The text exposition of every metric (all workers in multiprocess mode)."""
        if self.multiprocess is None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined, path=str(self.multiprocess))
        return generate_latest(combined)


# Any token is a valid HTTP method on the wire; only these become label values.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"


def method_label(scope: Scope) -> str:
    """The request's method, or ``OTHER``: label values (and log fields) stay a fixed set."""
    method = scope.get("method", "")
    return method if method in KNOWN_METHODS else OTHER_METHOD


def _route_template(scope: Scope) -> str:
    # Starlette stores the matched route in the scope; its path is the template
    # ("/api/v1/face/match/"), never the raw path, so label cardinality stays bounded.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


_ERROR_BODY_LIMIT = 8192


class MetricsMiddleware:
    """Pure ASGI middleware: request count, latency and error codes per route and status.

    Error responses (status ≥ 400) are small JSON bodies from the catalogue;
    the middleware reads their ``error_code`` so errors are counted by code
    without the route handlers having to report them.
    """

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        error_body = bytearray()
        capture = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, capture
            if message["type"] == "http.response.start":
                status = int(message["status"])
                capture = status >= 400
            elif message["type"] == "http.response.body" and capture:
                room = _ERROR_BODY_LIMIT - len(error_body)
                if room > 0:
                    error_body.extend(message.get("body", b"")[:room])
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_progress.dec()
            elapsed = time.perf_counter() - start
            route = _route_template(scope)
            labels = (method_label(scope), route, str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(elapsed)
            if status >= 400:
                self.metrics.errors.labels(str(status), _error_code(bytes(error_body))).inc()


def _error_code(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "none"
    if isinstance(data, dict) and data.get("error_code") is not None:
        return str(data["error_code"])
    return "none"
