"""The real `facematch serve` process: Valify's sample client flow, and the trials race.

The server runs on a free loopback port with two worker processes, so the
trials race is decided by the database, not by one process's memory.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select

from facematch.cli import cli
from facematch.store.models import AccessToken, Transaction
from facematch.store.security import digest_secret
from tests.conftest import fresh_database, lfw_image

pytestmark = [pytest.mark.slow, pytest.mark.lfw]

STARTUP_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    base_url: str
    env: dict[str, str]
    database_url: str


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    # A database of its own: the first start on an empty one must print the hint.
    with fresh_database(request.param, tmp_path_factory) as database_url:
        yield from _run_server(database_url, tmp_path_factory)


def _run_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = _free_port()
    data_dir = tmp_path_factory.mktemp("server-data")
    env = {
        **os.environ,
        "FACEMATCH_DATABASE_URL": database_url,
        "FACEMATCH_DATA_DIR": str(data_dir),
        "FACEMATCH_HOST": "127.0.0.1",
        "FACEMATCH_PORT": str(port),
        "FACEMATCH_WORKERS": "2",
        "FACEMATCH_ENVIRONMENT": "development",
        "FACEMATCH_LOG_FORMAT": "text",
    }
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "facematch"), "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited: {log_path.read_text(errors='replace')[-3000:]}")
            try:
                if requests.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not ready: {log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)  # polling a starting process, not standing in for a result
        yield Server(base_url, env, database_url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # The first start told the operator how to create a client.
    assert "facematch admin bootstrap" in log_path.read_text(errors="replace")


def _bootstrap(server: Server, **options: str) -> dict[str, str]:
    suffix = os.urandom(5).hex()
    args = [
        "admin",
        "bootstrap",
        "--organisation",
        f"e2e-{suffix}",
        "--username",
        f"e2e-{suffix}",
        "--json",
    ]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", value]
    result = CliRunner().invoke(cli, args, env=server.env)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _token(server: Server, client: dict[str, str]) -> str:
    response = requests.post(
        f"{server.base_url}/api/o/token/",
        data={
            "grant_type": "password",
            "username": client["username"],
            "password": client["password"],
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def test_valify_sample_client_flow(server: Server, lfw_root: Path) -> None:
    client = _bootstrap(server)
    token = _token(server, client)

    # Valify's published sample client, unchanged except for the host.
    url = f"{server.base_url}/api/v1/face/match"
    with open(lfw_image(lfw_root, "Aaron_Peirsol", 1), "rb") as image_file:
        first_img = base64.b64encode(image_file.read()).decode("utf-8")
    with open(lfw_image(lfw_root, "Aaron_Peirsol", 2), "rb") as image_file:
        second_img = base64.b64encode(image_file.read()).decode("utf-8")
    data = {"first_img": first_img, "second_img": second_img, "bundle_key": client["bundle_key"]}
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


def test_trials_race_exactly_three_of_twenty(server: Server, lfw_root: Path) -> None:
    client = _bootstrap(server)
    token = _token(server, client)
    first = base64.b64encode(lfw_image(lfw_root, "Aaron_Peirsol", 1).read_bytes()).decode()
    second = base64.b64encode(lfw_image(lfw_root, "Aaron_Peirsol", 3).read_bytes()).decode()
    data = {"first_img": first, "second_img": second, "bundle_key": client["bundle_key"]}

    def call(_: int) -> requests.Response:
        return requests.post(
            f"{server.base_url}/api/v1/face/match/",
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
