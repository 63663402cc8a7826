"""The server's periodic purge: started by the lifespan, purges at once, stops cleanly."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from facematch.service.app import create_app
from facematch.service.runtime.retention_task import (
    purge_periodically,
    start_purge_task,
    stop_purge_task,
)
from facematch.store import db
from facematch.store.models import Transaction, TransactionImage, utcnow
from tests.service.conftest import service_settings
from tests.service.support import bearer, issue_token, provision, script


def _expired_transaction_with_images(client: TestClient) -> str:
    creds = provision(client)
    response = client.post(
        "/api/v1/face/match/",
        json={
            "first_img": script("ok"),
            "second_img": script("ok"),
            "bundle_key": creds.bundle_key,
        },
        headers=bearer(issue_token(client, creds)),
    )
    assert response.status_code == 200, response.text
    transaction_id = response.json()["transaction_id"]
    with db.session_scope(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        session.execute(
            update(Transaction)
            .where(Transaction.id == transaction_id)
            .values(created_at=utcnow() - timedelta(days=45))
        )
    return transaction_id


def _images(client: TestClient, transaction_id: str) -> int:
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        return session.scalar(
            select(func.count())
            .select_from(TransactionImage)
            .where(TransactionImage.transaction_id == transaction_id)
        )


def test_periodic_purge_runs_and_stops(stub_client: TestClient) -> None:
    transaction_id = _expired_transaction_with_images(stub_client)
    assert _images(stub_client, transaction_id) == 2
    factory = stub_client.app.state.session_factory  # type: ignore[attr-defined]

    async def scenario() -> None:
        task = start_purge_task(factory, 3600)
        assert task is not None
        for _ in range(500):  # wait for the first run's effect, bounded
            if await asyncio.to_thread(_images, stub_client, transaction_id) == 0:
                break
            await asyncio.sleep(0.01)
        await stop_purge_task(task)
        assert task.cancelled()

    asyncio.run(scenario())
    assert _images(stub_client, transaction_id) == 0
    assert start_purge_task(factory, 0) is None  # 0 turns it off


def test_a_failing_purge_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    class BrokenFactory:
        def __call__(self) -> object:
            calls.append(1)
            raise RuntimeError("database away")

    async def scenario() -> None:
        task = asyncio.create_task(purge_periodically(BrokenFactory(), 0.001))  # type: ignore[arg-type]
        for _ in range(500):
            if len(calls) >= 2:
                break
            await asyncio.sleep(0.01)
        await stop_purge_task(task)

    with caplog.at_level("ERROR"):
        asyncio.run(scenario())
    assert len(calls) >= 2  # the loop survived the first failure
    assert "retention purge failed" in caplog.text


def test_app_starts_the_purge_when_configured(
    database_url: str, tmp_path: Path, stub_client: TestClient
) -> None:
    transaction_id = _expired_transaction_with_images(stub_client)
    # A second app on the same database, with the purge on: its first run happens at startup.
    app = create_app(
        service_settings(database_url, tmp_path, purge_interval_s=3600),
        matcher=stub_client.app.state.matcher,  # type: ignore[attr-defined]
    )
    with TestClient(app) as client:
        for _ in range(500):
            if _images(client, transaction_id) == 0:
                break
            time.sleep(0.01)  # polling the server's background task, bounded
        assert _images(client, transaction_id) == 0
