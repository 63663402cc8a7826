"""The serving layer inside the real app: probes, metrics of real calls, overload, deadlines."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from facematch.service.app import create_app
from facematch.service.errors import CATALOGUE
from facematch.service.runtime.serving import DeadlineMiddleware
from facematch.store.models import Transaction
from tests.service.conftest import TEST_METRICS_TOKEN, service_settings
from tests.service.support import StubMatcher, bearer, issue_token, provision, script

URL = "/api/v1/face/match/"


def _samples(client: TestClient) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    scrape = client.get("/metrics", headers=bearer(TEST_METRICS_TOKEN))
    for family in text_string_to_metric_families(scrape.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def _total(samples: dict, name: str, **labels: str) -> float:
    return sum(
        value
        for sample_labels, value in samples.get(name, [])
        if all(sample_labels.get(k) == v for k, v in labels.items())
    )


def test_readyz_checks_engine_and_database_of_the_real_app(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"engine": "ok", "database": "ok"}}
    assert client.get("/healthz").json() == {"status": "alive"}


def test_real_match_is_measured(client: TestClient, faces: dict[str, str]) -> None:
    before = _samples(client)
    creds = provision(client)
    token = issue_token(client, creds)
    body = {"first_img": faces["same_a"], "second_img": faces["same_b"]}
    response = client.post(URL, json=body | {"bundle_key": creds.bundle_key}, headers=bearer(token))
    assert response.status_code == 200, response.text
    after = _samples(client)

    def grew(name: str, **labels: str) -> float:
        return _total(after, name, **labels) - _total(before, name, **labels)

    assert grew("facematch_http_requests_total", route=URL, status="200", method="POST") == 1
    assert grew("facematch_http_request_duration_seconds_count", route=URL, status="200") == 1
    assert grew("facematch_engine_stage_duration_seconds_count", stage="engine_match") == 1
    assert grew("facematch_engine_stage_duration_seconds_count", stage="queue_wait") == 1
    assert grew("facematch_faces_detected_total") == 2
    assert grew("facematch_images_total", outcome="ok") == 2
    # The slot was given back once the request ended.
    assert _total(after, "facematch_workpool_pending_jobs") == 0
    assert response.headers["x-request-id"]


def test_engine_errors_are_counted_by_code(stub_client: TestClient) -> None:
    creds = provision(stub_client)
    token = issue_token(stub_client, creds)
    before = _samples(stub_client)
    body = {"first_img": script("raise:NoFaceError"), "second_img": script("ok")}
    response = stub_client.post(
        URL, json=body | {"bundle_key": creds.bundle_key}, headers=bearer(token)
    )
    code = str(CATALOGUE["no_face"].code)
    assert response.json()["error_code"] == int(code)
    after = _samples(stub_client)
    grew = _total(after, "facematch_errors_total", status="422", error_code=code) - _total(
        before, "facematch_errors_total", status="422", error_code=code
    )
    assert grew == 1
    assert _total(after, "facematch_images_total", outcome="NoFaceError") >= 1


@pytest.fixture
def slow_engine_client(
    database_url: str, tmp_path: Path
) -> Iterator[tuple[TestClient, StubMatcher]]:
    """One engine thread, room for one request, and a 0.5 s request deadline."""
    stub = StubMatcher()
    settings = service_settings(
        database_url,
        tmp_path,
        max_inflight_matches=1,
        cpu_threads=1,
        request_timeout_s=0.5,
    )
    app = create_app(settings, matcher=stub)  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client, stub
    stub.release.set()


def test_overload_refuses_at_once_without_spending_a_trial_then_deadline_answers(
    slow_engine_client: tuple[TestClient, StubMatcher],
) -> None:
    client, stub = slow_engine_client
    creds = provision(client)
    token = issue_token(client, creds)
    body = {"first_img": script("block"), "second_img": script("ok")}
    body |= {"bundle_key": creds.bundle_key}
    stub.release = threading.Event()
    with ThreadPoolExecutor(1) as threads:
        # Takes the only slot; the engine blocks past the 0.5 s deadline.
        blocked = threads.submit(client.post, URL, json=body, headers=bearer(token))
        assert stub.entered.acquire(timeout=30), "blocking request never reached the engine"
        refused = client.post(URL, json=body, headers=bearer(token))
        timed_out = blocked.result(timeout=30)

    assert refused.status_code == 429
    assert refused.json()["error_code"] == CATALOGUE["overloaded"].code
    assert int(refused.headers["retry-after"]) >= 1
    assert "trials_remaining" not in refused.json()  # refused before the token was charged

    entry = CATALOGUE["request_timeout"]
    assert timed_out.status_code == entry.status
    assert timed_out.json()["error_code"] == entry.code
    assert timed_out.json()["trials_remaining"] == 2  # only the admitted call took a trial
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        row = session.get(Transaction, timed_out.json()["transaction_id"])
        assert row is not None
        assert (row.outcome, row.error_code) == ("error", entry.code)

    # The engine job outlived its request: the slot frees only when it ends.
    pool = client.app.state.pool  # type: ignore[attr-defined]
    assert pool.pending == 1
    drained = threading.Event()
    report_depth = pool.on_depth

    def watch(depth: int) -> None:
        report_depth(depth)
        if depth == 0:
            drained.set()

    pool.on_depth = watch
    stub.release.set()
    assert drained.wait(30)
    ok = {"first_img": script("ok"), "second_img": script("ok"), "bundle_key": creds.bundle_key}
    assert client.post(URL, json=ok, headers=bearer(token)).status_code == 200


def test_request_stuck_outside_the_pool_is_cut_off_with_the_catalogue_error() -> None:
    app = FastAPI()
    hung = asyncio.Event()  # never set: a handler waiting on something that never comes

    @app.get("/stuck")
    async def stuck() -> dict[str, str]:
        await hung.wait()
        return {"never": "reached"}

    @app.get("/quick")
    async def quick(request: Request) -> dict[str, bool]:
        return {"has_deadline": isinstance(request.state.deadline, float)}

    app.add_middleware(DeadlineMiddleware, timeout_s=0.1, grace_s=0.0)
    client = TestClient(app)
    response = client.get("/stuck")
    entry = CATALOGUE["request_timeout"]
    assert response.status_code == entry.status
    assert response.json()["error_code"] == entry.code
    assert client.get("/quick").json() == {"has_deadline": True}
