"""Prometheus metrics: recorded by the ASGI middleware, exposed at /metrics, parsed back."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from facematch.service.api.deps import get_metrics
from facematch.service.api.routes.health import router as ops_router
from facematch.service.runtime.metrics import UNMATCHED_ROUTE, MetricsMiddleware, ServiceMetrics


def _app(metrics: ServiceMetrics | None = None) -> FastAPI:
    app = FastAPI()
    metrics = metrics or ServiceMetrics()
    app.dependency_overrides[get_metrics] = lambda: metrics
    app.include_router(ops_router)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    @app.post("/fail")
    async def fail() -> JSONResponse:
        return JSONResponse({"message": "no face", "error_code": 2001}, status_code=422)

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """``{sample name: [(labels, value), ...]}`` from a text exposition."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def _value(samples: dict, name: str, **labels: str) -> float:
    matching = [
        v for lab, v in samples.get(name, []) if all(lab.get(k) == w for k, w in labels.items())
    ]
    assert len(matching) == 1, f"{name}{labels}: {samples.get(name)}"
    return matching[0]


def test_requests_are_counted_per_route_template_and_status() -> None:
    client = TestClient(_app())
    for item in (1, 2, 3):
        assert client.get(f"/items/{item}").status_code == 200
    assert client.post("/fail").status_code == 422
    assert client.get("/nowhere/at/all").status_code == 404

    samples = _samples(client.get("/metrics").text)
    total = "facematch_http_requests_total"
    assert _value(samples, total, route="/items/{item_id}", status="200", method="GET") == 3
    assert _value(samples, total, route="/fail", status="422") == 1
    # Unknown paths share one label value: no cardinality explosion from scanners.
    assert _value(samples, total, route=UNMATCHED_ROUTE, status="404") == 1
    count = "facematch_http_request_duration_seconds_count"
    assert _value(samples, count, route="/items/{item_id}", status="200") == 3
    inf_bucket = "facematch_http_request_duration_seconds_bucket"
    assert _value(samples, inf_bucket, route="/fail", status="422", le="+Inf") == 1


def test_errors_are_counted_by_catalogue_error_code() -> None:
    client = TestClient(_app())
    client.post("/fail")
    client.post("/fail")
    client.get("/items/not-a-number")  # FastAPI's own 422, no error_code

    samples = _samples(client.get("/metrics").text)
    assert _value(samples, "facematch_errors_total", status="422", error_code="2001") == 2
    assert _value(samples, "facematch_errors_total", status="422", error_code="none") == 1


def test_engine_and_pool_metrics_are_exposed() -> None:
    metrics = ServiceMetrics()
    app = _app(metrics)
    metrics.observe_stage("engine_match", 0.08)
    metrics.observe_stage("engine_match", 0.12)
    metrics.observe_stage("queue_wait", 0.001)
    metrics.set_queue_depth(5)
    metrics.observe_image("ok", faces=1)
    metrics.observe_image("ok", faces=1)
    metrics.observe_image("NoFaceError")

    samples = _samples(TestClient(app).get("/metrics").text)
    stage = "facematch_engine_stage_duration_seconds"
    assert _value(samples, f"{stage}_count", stage="engine_match") == 2
    assert abs(_value(samples, f"{stage}_sum", stage="engine_match") - 0.2) < 1e-9
    assert _value(samples, "facematch_workpool_pending_jobs") == 5
    assert _value(samples, "facematch_faces_detected_total") == 2
    assert _value(samples, "facematch_images_total", outcome="NoFaceError") == 1
    # Single-process mode also exports the standard process metrics.
    assert _value(samples, "process_resident_memory_bytes") > 0


def test_two_apps_in_one_process_have_separate_registries() -> None:
    first, second = TestClient(_app()), TestClient(_app())
    first.get("/items/1")
    first.get("/items/1")
    second.get("/items/1")
    total = "facematch_http_requests_total"
    one = _samples(first.get("/metrics").text)
    two = _samples(second.get("/metrics").text)
    assert _value(one, total, route="/items/{item_id}") == 2
    assert _value(two, total, route="/items/{item_id}") == 1


_WORKER = textwrap.dedent(
    """
    import sys
    from facematch.service.runtime.metrics import ServiceMetrics
    m = ServiceMetrics()
    m.requests.labels("POST", "/api/v1/face/match/", "200").inc(int(sys.argv[1]))
    m.set_queue_depth(int(sys.argv[2]))
    if sys.argv[3] == "expose":
        sys.stdout.write(m.expose().decode())
    else:
        print("ready", flush=True)
        sys.stdin.readline()  # stay alive until the parent has scraped
    """
)


def test_multiprocess_mode_sums_all_workers(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    run = [sys.executable, "-c", _WORKER]
    # Worker A stays alive (its gauge counts); worker B exits after counting.
    alive = subprocess.Popen(
        [*run, "3", "4", "wait"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert alive.stdout is not None
        assert alive.stdout.readline() == b"ready\n"
        subprocess.run(
            [*run, "5", "7", "wait"], env=env, input=b"\n", capture_output=True, check=True
        )
        scrape = subprocess.run(
            [*run, "0", "1", "expose"], env=env, capture_output=True, check=True, timeout=60
        )
    finally:
        alive.communicate(b"\n", timeout=60)
    samples = _samples(scrape.stdout.decode())
    # Counters of every worker ever started are summed, the exited one included.
    assert _value(samples, "facematch_http_requests_total", status="200") == 8
    # Gauges count live workers only: A (4) + the scraper (1); B's file was dropped.
    assert _value(samples, "facematch_workpool_pending_jobs") == 5
