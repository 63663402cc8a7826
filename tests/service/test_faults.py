"""Fault tests on real `facematch serve` processes (slow; bounded by timeouts).

* a worker killed with SIGKILL mid-load: the other keeps serving, uvicorn
  replaces the dead one, and the database stays exact — no transaction twice
  or half-written, quota and trials accounted for;
* two servers on different ports sharing one PostgreSQL: a token from one
  works on the other, and the 3-trial limit holds across both under
  concurrent calls;
* the database taken away (a TCP proxy we cut, instead of restarting the
  shared PostgreSQL other tests use): requests get the catalogue's 503 while
  it is down, /readyz says so, and both recover without restarting facematch;
* /metrics on a multi-worker server sums every worker, and SIGTERM under load
  lets the requests in flight finish before the server exits cleanly.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from facematch.service.errors import CATALOGUE
from facematch.store.vault import new_key_spec
from facematch.testing.live import LiveServer
from facematch.testing.provision import ledger, provision, token_from
from tests.conftest import lfw_image
from tests.service.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.lfw, pytest.mark.timeout(600)]

POSTGRES_ENV = "FACEMATCH_TEST_POSTGRES_URL"
MATCH = "/api/v1/face/match/"


@contextmanager
def _private_schema(base: str) -> Iterator[str]:
    """A fresh schema in the test PostgreSQL (unique per test), dropped afterwards."""
    schema = f"fm_fault_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (
            make_url(base)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set: this fault test needs a shared PostgreSQL")
    with _private_schema(base) as url:
        yield url


@pytest.fixture
def any_database_url(tmp_path: Path) -> Iterator[str]:
    """PostgreSQL when configured (the production setup), otherwise a SQLite file."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        yield f"sqlite:///{tmp_path / 'faults.sqlite3'}"
        return
    with _private_schema(base) as url:
        yield url


@pytest.fixture(scope="module")
def pair(lfw_root: Path) -> tuple[str, str]:
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return (
        b64(lfw_image(lfw_root, "Aaron_Peirsol", 1)),
        b64(lfw_image(lfw_root, "Aaron_Peirsol", 2)),
    )


def _body(pair: tuple[str, str], bundle_key: str) -> dict[str, str]:
    return {"first_img": pair[0], "second_img": pair[1], "bundle_key": bundle_key}


async def _post(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], token: str
) -> tuple[int, dict[str, Any]]:
    """(status, JSON body); status 0 when the connection broke (the worker was killed)."""
    try:
        response = await http.post(
            url + MATCH, json=body, headers={"Authorization": f"Bearer {token}"}
        )
    except httpx.TransportError:
        return 0, {}
    return response.status_code, response.json()


def test_sigkill_one_worker_mid_load(
    any_database_url: str, pair: tuple[str, str], tmp_path: Path
) -> None:
    quota = trials = 1000
    client = provision(any_database_url, quota=quota, token_trials=trials)
    body = _body(pair, client.bundle_key)
    with LiveServer(
        database_url=any_database_url,
        data_dir=tmp_path,
        workers=2,
        log_path=tmp_path / "server.log",
    ) as server:
        token = token_from(server.url, client)
        workers = server.worker_pids()
        assert len(workers) == 2

        async def load() -> tuple[int, list[tuple[int, dict]], list[tuple[int, dict]]]:
            async with httpx.AsyncClient(timeout=120) as http:
                tasks = [
                    asyncio.create_task(_post(http, server.url, body, token)) for _ in range(24)
                ]
                # Kill as soon as the first answers, the worker holding the most
                # connections: its requests are then queued or running.
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                held = server.connections_by_worker()
                victim = max(held, key=held.__getitem__)
                assert held[victim] >= 1, held
                os.kill(victim, signal.SIGKILL)
                during = await asyncio.gather(*tasks)
            # New connections after the kill all land on live workers.
            async with httpx.AsyncClient(timeout=120) as http:
                after = [await _post(http, server.url, body, token) for _ in range(6)]
            return victim, during, after

        victim, during, after = asyncio.run(load())
        (survivor,) = set(workers) - {victim}
        # uvicorn replaces the dead worker, which becomes ready in turn.
        server.wait_ready(workers=3)
        assert victim not in server.worker_pids()
        assert survivor in server.worker_pids()

    assert [status for status, _ in after] == [200] * 6
    answered = [(s, b) for s, b in during + after if s != 0]
    lost = len(during) - sum(1 for s, _ in during if s != 0)
    assert all(status == 200 for status, _ in answered), answered
    assert lost >= 1, "the kill hit no request in flight: not a mid-load kill"
    book = ledger(any_database_url, bundle_id=client.bundle_id, tokens=[token])

    # Every answered call is one finished, successful transaction; none twice.
    ids = [b["transaction_id"] for _, b in answered]
    assert len(set(ids)) == len(ids)
    for tx_id in ids:
        outcome, code, similar = book.transactions[tx_id]
        assert (outcome, code) == ("success", None)
        assert similar is not None
    # Calls lost with the worker left at most one row each: finished before the kill
    # (the answer was lost on the way), or still `pending` — never half-written.
    others = {tx: row for tx, row in book.transactions.items() if tx not in set(ids)}
    assert len(others) <= lost
    for outcome, code, similar in others.values():
        assert (outcome == "pending" and code is None and similar is None) or (
            outcome == "success" and similar is not None
        ), (outcome, code, similar)
    # Quota and the transaction row are committed together: exactly one unit per row.
    assert quota - book.quota_remaining == len(book.transactions)
    # A trial per call that reached the service: all answered ones, some lost ones.
    consumed = trials - book.trials_remaining[token]
    assert len(answered) <= consumed <= len(answered) + lost
    # Each answer reports a distinct count: no trial was handed out twice.
    remaining = [b["trials_remaining"] for _, b in answered]
    assert len(set(remaining)) == len(remaining)


def test_token_from_one_server_works_on_another_and_trials_hold_across_both(
    postgres_url: str, pair: tuple[str, str], tmp_path: Path
) -> None:
    client = provision(postgres_url, quota=None, token_trials=3)
    body = _body(pair, client.bundle_key)
    # Hosts of one deployment share the database and the image keys (docs/operations.md):
    # each may be the first to seal the bundle's HMAC secret that all of them sign with.
    keys = new_key_spec("shared")
    with (
        LiveServer(
            database_url=postgres_url,
            data_dir=tmp_path / "a",
            workers=1,
            log_path=tmp_path / "a.log",
            FACEMATCH_IMAGE_KEYS=keys,
        ) as first,
        LiveServer(
            database_url=postgres_url,
            data_dir=tmp_path / "b",
            workers=1,
            log_path=tmp_path / "b.log",
            FACEMATCH_IMAGE_KEYS=keys,
        ) as second,
    ):
        token = token_from(first.url, client)

        async def calls() -> list[tuple[int, dict]]:
            async with httpx.AsyncClient(timeout=120) as http:
                # 10 concurrent calls, alternating servers, on a 3-trial token.
                return await asyncio.gather(
                    *(_post(http, (first, second)[i % 2].url, body, token) for i in range(10))
                )

        results = asyncio.run(calls())

    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 3 + [403] * 7, results
    assert sorted(b["trials_remaining"] for s, b in results if s == 200) == [0, 1, 2]
    exhausted = CATALOGUE["token_trials_exhausted"].code
    assert all(b["error_code"] == exhausted for s, b in results if s == 403)
    book = ledger(postgres_url, bundle_id=client.bundle_id, tokens=[token])
    assert book.trials_remaining[token] == 0
    assert len(book.transactions) == 3


def test_database_outage_is_answered_503_and_recovers_without_restart(
    postgres_url: str, pair: tuple[str, str], tmp_path: Path
) -> None:
    client = provision(postgres_url, quota=None, token_trials=100)
    body = _body(pair, client.bundle_key)
    url = make_url(postgres_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        with LiveServer(
            database_url=via_proxy,
            data_dir=tmp_path,
            workers=1,
            log_path=tmp_path / "server.log",
            FACEMATCH_READINESS_TIMEOUT_S="3",
        ) as server:
            token = token_from(server.url, client)

            async def three() -> list[tuple[int, dict]]:
                async with httpx.AsyncClient(timeout=60) as http:
                    return [await _post(http, server.url, body, token) for _ in range(3)]

            before = asyncio.run(three())
            proxy.cut()
            during = asyncio.run(three())
            ready_during = httpx.get(f"{server.url}/readyz", timeout=10)
            alive_during = httpx.get(f"{server.url}/healthz", timeout=10)
            proxy.restore()
            after = asyncio.run(three())
            ready_after = httpx.get(f"{server.url}/readyz", timeout=10)
            pid_unchanged = server.process is not None and server.process.poll() is None

    assert [s for s, _ in before] == [200] * 3
    unavailable = CATALOGUE["database_unavailable"]
    assert [s for s, _ in during] == [unavailable.status] * 3, during
    assert all(b["error_code"] == unavailable.code for _, b in during)
    assert ready_during.status_code == 503
    assert ready_during.json()["checks"]["database"] != "ok"
    assert alive_during.status_code == 200  # liveness never depends on the database
    assert [s for s, _ in after] == [200] * 3, after
    assert ready_after.status_code == 200
    assert pid_unchanged


def _match_count(url: str) -> float:
    """facematch_http_requests_total of 200 answers on the v1 match route, from /metrics."""
    text_ = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text_)
        for sample in family.samples
        if sample.name == "facematch_http_requests_total"
        and sample.labels.get("route") == MATCH
        and sample.labels.get("status") == "200"
    )


def test_metrics_sum_all_workers_and_sigterm_finishes_in_flight_requests(
    any_database_url: str, pair: tuple[str, str], tmp_path: Path
) -> None:
    client = provision(any_database_url, quota=None, token_trials=1000)
    body = _body(pair, client.bundle_key)
    server = LiveServer(
        database_url=any_database_url,
        data_dir=tmp_path,
        workers=2,
        log_path=tmp_path / "server.log",
    )
    with server:
        token = token_from(server.url, client)

        async def warm() -> list[tuple[int, dict]]:
            async with httpx.AsyncClient(timeout=120) as http:
                return await asyncio.gather(
                    *(_post(http, server.url, body, token) for _ in range(10))
                )

        assert [s for s, _ in asyncio.run(warm())] == [200] * 10
        # Whichever worker answers the scrape, it reports both workers' requests.
        scrapes = [_match_count(server.url) for _ in range(6)]
        assert scrapes == [10.0] * 6

        async def shutdown_under_load() -> list[tuple[int, dict]]:
            async with httpx.AsyncClient(timeout=120) as http:
                tasks = [
                    asyncio.create_task(_post(http, server.url, body, token)) for _ in range(8)
                ]
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                assert server.process is not None
                server.process.send_signal(signal.SIGTERM)
                return await asyncio.gather(*tasks)

        results = asyncio.run(shutdown_under_load())
        assert server.process is not None
        exit_code = server.process.wait(timeout=60)

    # Every request already sent when SIGTERM arrived was answered, none lost.
    assert [s for s, _ in results] == [200] * 8, results
    assert exit_code == 0
    assert "Shutting down" in server.log()
