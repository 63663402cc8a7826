"""/healthz and /readyz: liveness never depends on dependencies; readiness does, with a timeout."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from facematch.service.api.deps import get_readiness
from facematch.service.api.routes.health import router as ops_router
from facematch.service.runtime.metrics import ServiceMetrics
from facematch.service.runtime.readiness import Readiness, blocking_check


def _app(readiness: Readiness | None) -> FastAPI:
    app = FastAPI()
    app.include_router(ops_router)
    if readiness is not None:
        app.dependency_overrides[get_readiness] = lambda: readiness
    return app


async def _ok() -> None:
    return None


async def _models_missing() -> None:
    raise RuntimeError("models not loaded")


@pytest.fixture
def hung_probe() -> Iterator[threading.Event]:
    release = threading.Event()
    yield release
    release.set()  # let the probe thread end


def test_healthz_answers_without_any_readiness() -> None:
    response = TestClient(_app(None)).get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_readyz_is_503_before_startup_finished() -> None:
    response = TestClient(_app(None)).get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not_ready"


def test_readyz_reports_each_check() -> None:
    readiness = Readiness()
    readiness.add("database", _ok)
    readiness.add("models", _models_missing)
    client = TestClient(_app(readiness))
    response = client.get("/readyz")
    assert response.status_code == 503
    # Which check failed, not why: the reason is for the log (next test).
    assert response.json()["checks"] == {"database": "ok", "models": "failed"}
    readiness.add("models", _ok)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "models": "ok"}}


def test_readyz_fails_during_shutdown() -> None:
    readiness = Readiness()
    readiness.add("models", _ok)
    readiness.shutting_down = True
    response = TestClient(_app(readiness)).get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["shutdown"] == "shutting down"


def test_hung_probe_times_out_and_does_not_pile_up(hung_probe: threading.Event) -> None:
    calls: list[int] = []

    def probe() -> None:
        calls.append(1)
        hung_probe.wait(30)

    readiness = Readiness(timeout_s=0.1)
    readiness.add("database", blocking_check(probe, name="database"))
    client = TestClient(_app(readiness))
    first = client.get("/readyz")
    second = client.get("/readyz")
    assert first.status_code == second.status_code == 503
    assert first.json()["checks"]["database"] == "timed out"
    assert second.json()["checks"]["database"] == "failed"  # the earlier probe still hangs
    assert len(calls) == 1


def _select_one(url: str) -> None:
    engine = create_engine(url, connect_args={"connect_timeout": 1} if "postgres" in url else {})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def test_database_check_on_a_real_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ready.sqlite3'}"
    readiness = Readiness()
    readiness.add("database", blocking_check(lambda: _select_one(url), name="database"))
    response = TestClient(_app(readiness)).get("/readyz")
    assert response.status_code == 200


def test_unreachable_postgres_makes_the_worker_unready() -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://facematch@127.0.0.1:{port}/facematch"
    readiness = Readiness(timeout_s=2.0)
    readiness.add("database", blocking_check(lambda: _select_one(url), name="database"))
    response = TestClient(_app(readiness)).get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "failed"


def test_readyz_hides_the_reason_and_logs_it_once_per_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The driver's error line names hosts, users and paths: not for anyone who asks.
    secret = "connection to server at 10.1.2.3, user facematch_admin: password refused"

    async def database_down() -> None:
        raise RuntimeError(secret)

    readiness = Readiness()
    readiness.add("database", database_down)
    client = TestClient(_app(readiness))
    with caplog.at_level("INFO", logger="facematch.service.runtime.readiness"):
        answers = [client.get("/readyz") for _ in range(3)]
    assert all(secret not in answer.text for answer in answers)
    assert [a.json()["checks"]["database"] for a in answers] == ["failed"] * 3
    logged = [r for r in caplog.records if getattr(r, "check", None) == "database"]
    assert len(logged) == 1  # three failing probes, one change
    assert secret in logged[0].outcome  # type: ignore[attr-defined]


def test_probes_answer_head() -> None:
    # Load balancers and uptime checkers often probe with HEAD; it was a 405.
    readiness = Readiness()
    readiness.add("models", _ok)
    client = TestClient(_app(readiness))
    assert client.head("/healthz").status_code == 200
    assert client.head("/readyz").status_code == 200


async def _take_every_worker_thread(limiter: anyio.CapacityLimiter, holder: object) -> float:
    total = limiter.total_tokens
    limiter.total_tokens = 1
    await limiter.acquire_on_behalf_of(holder)
    return total


async def _give_back_worker_threads(
    limiter: anyio.CapacityLimiter, holder: object, total: float
) -> None:
    limiter.release_on_behalf_of(holder)
    limiter.total_tokens = total


def test_probes_answer_while_every_worker_thread_is_busy() -> None:
    # A plain-def dependency runs on one of anyio's worker threads; a probe needing
    # one would queue behind the database calls that fill them under load.
    readiness = Readiness()
    readiness.add("models", _ok)
    app = FastAPI()
    app.include_router(ops_router)
    app.state.readiness = readiness  # read by the app's own dependencies, no override
    app.state.metrics = ServiceMetrics()
    answers: dict[str, int] = {}

    def probe() -> None:
        answers["readyz"] = client.get("/readyz").status_code
        answers["metrics"] = client.get("/metrics").status_code

    with TestClient(app) as client:
        limiter = client.portal.call(anyio.to_thread.current_default_thread_limiter)
        holder = object()
        total = client.portal.call(_take_every_worker_thread, limiter, holder)
        try:
            prober = threading.Thread(target=probe, daemon=True)
            prober.start()
            prober.join(10)  # a bound only: the answers come at once
            assert answers == {"readyz": 200, "metrics": 200}
        finally:
            client.portal.call(_give_back_worker_threads, limiter, holder, total)
            prober.join(10)
