"""The demo page's server side: on only when allowed, a demo organisation's token
for the page, and the face boxes of that token's own transactions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facematch.service.api.demo import demo_enabled
from facematch.service.app import create_app
from facematch.service.errors import CATALOGUE
from facematch.settings import Settings
from tests.service.conftest import service_settings
from tests.service.support import StubMatcher, bearer, script


@pytest.mark.parametrize(
    ("environment", "demo", "enabled"),
    [
        ("development", None, True),
        ("production", None, False),
        ("production", True, True),
        ("development", False, False),
    ],
)
def test_demo_is_on_in_development_and_off_by_default_in_production(
    environment: str, demo: bool | None, enabled: bool, tmp_path: Path
) -> None:
    settings = Settings(environment=environment, demo=demo, data_dir=tmp_path)  # type: ignore[arg-type]
    assert demo_enabled(settings) is enabled
    page = TestClient(create_app(settings)).get("/demo")  # no lifespan: the page is a file
    assert page.status_code == (200 if enabled else 404)
    if not enabled:
        assert page.json()["error_code"] == CATALOGUE["not_found"].code


@pytest.fixture(scope="module")
def demo_client(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    stub = StubMatcher()
    settings = service_settings(database_url, tmp_path_factory.mktemp("demo"), demo=True)
    with TestClient(create_app(settings, matcher=stub), raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        yield client


def _match(client: TestClient, session: dict) -> dict:
    response = client.post(
        "/api/v1/face/match/",
        json={
            "first_img": script("ok"),
            "second_img": script("ok"),
            "bundle_key": session["bundle_key"],
        },
        headers=bearer(session["access_token"]),
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_session_gives_a_working_token_of_the_demo_bundle(demo_client: TestClient) -> None:
    first = demo_client.post("/demo/session")
    second = demo_client.post("/demo/session")
    assert first.status_code == second.status_code == 200
    assert first.headers["cache-control"] == "no-store"
    one, two = first.json(), second.json()
    assert one["bundle_key"] == two["bundle_key"]  # every worker derives the same key
    assert one["access_token"] != two["access_token"]
    assert one["trials"] == 3
    assert _match(demo_client, one)["trials_remaining"] == 2


def test_boxes_only_for_the_token_that_made_the_transaction(demo_client: TestClient) -> None:
    mine, other = demo_client.post("/demo/session").json(), demo_client.post("/demo/session").json()
    transaction_id = _match(demo_client, mine)["transaction_id"]
    boxes = demo_client.post(
        "/demo/boxes",
        json={"transaction_id": transaction_id},
        headers=bearer(mine["access_token"]),
    )
    assert boxes.status_code == 200
    assert boxes.json() == {
        "first": {"left": 1, "top": 2, "right": 3, "bottom": 4},
        "second": {"left": 1, "top": 2, "right": 3, "bottom": 4},
    }
    refused = demo_client.post(
        "/demo/boxes",
        json={"transaction_id": transaction_id},
        headers=bearer(other["access_token"]),
    )
    assert refused.status_code == 404
    assert refused.json()["error_code"] == CATALOGUE["transaction_not_found"].code


@pytest.mark.parametrize(
    ("body", "headers", "status", "name"),
    [
        ({"transaction_id": "x"}, {}, 403, "token_missing"),
        ({"transaction_id": "x" * 65}, {"Authorization": "Bearer t"}, 400, "invalid_field"),
        ({"transaction_id": 7}, {"Authorization": "Bearer t"}, 400, "invalid_field"),
        ([1, 2], {"Authorization": "Bearer t"}, 400, "invalid_field"),
    ],
)
def test_boxes_refuse_bad_requests_with_catalogue_errors(
    demo_client: TestClient, body: object, headers: dict, status: int, name: str
) -> None:
    response = demo_client.post("/demo/boxes", json=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error_code"] == CATALOGUE[name].code


def test_boxes_refuse_a_body_that_is_not_json(demo_client: TestClient) -> None:
    response = demo_client.post(
        "/demo/boxes", content=b"\xff{", headers={"Authorization": "Bearer t"}
    )
    assert response.status_code == 400
    assert response.json()["error_code"] == CATALOGUE["invalid_json"].code


def test_demo_organisation_cannot_read_transactions_back(demo_client: TestClient) -> None:
    session = demo_client.post("/demo/session").json()
    transaction_id = _match(demo_client, session)["transaction_id"]
    response = demo_client.post(
        "/api/v1/transaction/fetch-images/",
        json={"bundle_key": session["bundle_key"], "transaction_id": transaction_id},
        headers=bearer(session["access_token"]),
    )
    assert response.status_code == 403
    assert response.json()["error_code"] == CATALOGUE["public_key_missing"].code


def test_live_demo_tokens_are_bounded(
    demo_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facematch.service.application import demo

    assert demo_client.post("/demo/session").status_code == 200
    # This module's tests hold at least one live demo token now: a cap of 1 is reached.
    service = demo_client.app.state.services.demo  # type: ignore[attr-defined]
    assert service.max_live_tokens == demo.DEMO_MAX_LIVE_TOKENS
    monkeypatch.setattr(service, "max_live_tokens", 1)
    refused = demo_client.post("/demo/session")
    assert refused.status_code == 429
    assert refused.json()["error_code"] == CATALOGUE["overloaded"].code
    assert refused.headers["retry-after"] == str(demo.DEMO_RETRY_AFTER_S)


@pytest.mark.parametrize(
    ("content", "name"),
    [
        # Deep enough to exhaust the parser's recursion: a RecursionError, not a ValueError.
        (b"[" * 20_000 + b"]" * 20_000, "invalid_json"),
        # The shared parser refuses these anywhere in a body, as on the service's
        # endpoints; PostgreSQL cannot even be asked about a NUL.
        (b'{"transaction_id": "tx\\u0000"}', "invalid_json"),
        (b'{"transaction_id": "tx\\ud800"}', "invalid_json"),
        (b'{"transaction_id": "tx", "x": NaN}', "invalid_json"),
    ],
    ids=["deep nesting", "NUL", "lone surrogate", "NaN"],
)
def test_boxes_refuse_hostile_json_like_the_service_does(
    demo_client: TestClient, content: bytes, name: str
) -> None:
    response = demo_client.post(
        "/demo/boxes",
        content=content,
        headers={"Authorization": "Bearer t", "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == CATALOGUE[name].code
