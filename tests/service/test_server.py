"""The real `facematch serve` process: Valify's sample client flow, and the trials race.

The server runs on a free loopback port with two worker processes, so the
trials race is decided by the database, not by one process's memory.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, func, select

from facematch.store.models import AccessToken, Transaction
from facematch.store.security import digest_secret
from facematch.testing.live import LiveServer
from facematch.testing.provision import provision, token_from
from tests.conftest import fresh_database, lfw_image

pytestmark = [pytest.mark.slow, pytest.mark.lfw]


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    # A database of its own: the first start on an empty one must print the hint.
    with fresh_database(request.param, tmp_path_factory) as database_url:
        data_dir = tmp_path_factory.mktemp("server-data")
        live = LiveServer(
            database_url=database_url,
            data_dir=data_dir,
            log_path=data_dir / "server.log",
            workers=2,
            FACEMATCH_LOG_FORMAT="text",
        )
        with live:
            yield live
        # The first start told the operator how to create a client.
        assert "facematch admin bootstrap" in live.log()


def test_valify_sample_client_flow(server: LiveServer, lfw_root: Path) -> None:
    client = provision(server.database_url)
    token = token_from(server.url, client)

    # Valify's published sample client, unchanged except for the host.
    url = f"{server.url}/api/v1/face/match"
    with open(lfw_image(lfw_root, "Aaron_Peirsol", 1), "rb") as image_file:
        first_img = base64.b64encode(image_file.read()).decode("utf-8")
    with open(lfw_image(lfw_root, "Aaron_Peirsol", 2), "rb") as image_file:
        second_img = base64.b64encode(image_file.read()).decode("utf-8")
    data = {"first_img": first_img, "second_img": second_img, "bundle_key": client.bundle_key}
    headers = {"Authorization": "Bearer " + token}
    response = requests.post(url, json=data, headers=headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"result", "transaction_id", "trials_remaining"}
    assert set(body["result"]) == {"is_similar", "confidence"}
    assert body["result"]["is_similar"] is True
    assert isinstance(body["result"]["confidence"], float)
    assert body["trials_remaining"] == 2
    assert response.headers.get("x-request-id")


def test_trials_race_exactly_three_of_twenty(server: LiveServer, lfw_root: Path) -> None:
    client = provision(server.database_url)
    token = token_from(server.url, client)
    first = base64.b64encode(lfw_image(lfw_root, "Aaron_Peirsol", 1).read_bytes()).decode()
    second = base64.b64encode(lfw_image(lfw_root, "Aaron_Peirsol", 3).read_bytes()).decode()
    data = {"first_img": first, "second_img": second, "bundle_key": client.bundle_key}

    def call(_: int) -> requests.Response:
        return requests.post(
            f"{server.url}/api/v1/face/match/",
            json=data,
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )

    with ThreadPoolExecutor(max_workers=20) as executor:
        responses = list(executor.map(call, range(20)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 3, statuses
    assert statuses.count(403) == 17, statuses
    assert all(r.json()["error_code"] == 1104 for r in responses if r.status_code == 403)
    assert sorted(r.json()["trials_remaining"] for r in responses if r.status_code == 200) == [
        0,
        1,
        2,
    ]

    engine = create_engine(server.database_url)
    try:
        with engine.connect() as connection:
            token_row = connection.execute(
                select(AccessToken.id, AccessToken.trials_remaining).where(
                    AccessToken.token_hash == digest_secret(token)
                )
            ).one()
            assert token_row.trials_remaining == 0
            recorded = connection.execute(
                select(func.count()).where(Transaction.token_id == token_row.id)
            ).scalar()
            ids = {r.json()["transaction_id"] for r in responses if r.status_code == 200}
    finally:
        engine.dispose()
    # Every processed call recorded exactly one transaction; refused calls none.
    assert recorded == 3
    assert len(ids) == 3
