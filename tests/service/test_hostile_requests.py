"""Malformed and hostile requests get catalogue answers, never a 500 (issue 10, defects 2, 4, 5).

Each case here produced a 500 with a traceback in the log, grew /metrics, or
made the server buffer a body for a client that had not shown a token.
"""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from facematch.service.api.json_body import (
    MAX_DEPTH,
    InvalidJsonError,
    parse_json,
    parse_json_object,
)
from facematch.service.errors import CATALOGUE
from facematch.store.models import AccessToken
from facematch.store.security import digest_secret
from tests.service.conftest import TEST_METRICS_TOKEN
from tests.service.support import bearer, issue_token, provision, script

URL = "/api/v1/face/match/"
INQUIRE_URL = "/api/v1/transaction/inquire/"
INVALID_JSON = CATALOGUE["invalid_json"].code

# Bodies as a client can send them; each used to escape the JSON handling.
HOSTILE_BODIES = {
    "huge_integer": b'{"first_img": ' + b"9" * 5000 + b"}",
    "deep_nesting": b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "nesting_past_the_limit": b'{"data": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}",
    "nan_literal": b'{"first_img": NaN}',
    "infinity_literal": b'{"first_img": -Infinity}',
    "invalid_utf8": b'{"first_img": "\xff\xfe"}',
    "surrogate_in_key": b'{"\\udfff": 1}',
    # PostgreSQL refuses NUL in text: a driver error, i.e. a 500, before the fix.
    "nul_in_transaction_id": b'{"first_img": "x", "transaction_id": "ab\\u0000c"}',
    "nul_in_key": b'{"a\\u0000": 1}',
}


def _tokened(client: TestClient) -> tuple[dict[str, str], str]:
    creds = provision(client)
    token = issue_token(client, creds)
    return {"Content-Type": "application/json", **bearer(token)}, creds.bundle_key


def _trials_left(client: TestClient, token_header: dict[str, str]) -> int:
    token = token_header["Authorization"].split(" ", 1)[1]
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        row = session.scalar(
            select(AccessToken).where(AccessToken.token_hash == digest_secret(token))
        )
        assert row is not None
        return row.trials_remaining


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_hostile_json_is_a_400_without_a_trial(
    stub_client: TestClient, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    headers, _ = _tokened(stub_client)
    with caplog.at_level(logging.ERROR):
        response = stub_client.post(URL, content=HOSTILE_BODIES[name], headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == INVALID_JSON
    assert _trials_left(stub_client, headers) == 3
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "field", ["bundle_key", "first_img", "second_img", "transaction_id", "lang"]
)
def test_lone_surrogate_in_any_face_match_field_is_invalid_json(
    stub_client: TestClient, field: str
) -> None:
    headers, bundle_key = _tokened(stub_client)
    body = {"first_img": script("ok"), "second_img": script("ok"), "bundle_key": bundle_key}
    body[field] = "abc\ud800def"
    raw = json.dumps(body).encode()  # ensure_ascii: the surrogate travels as \ud800
    assert b"\\ud800" in raw
    response = stub_client.post(URL, content=raw, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == INVALID_JSON
    assert _trials_left(stub_client, headers) == 3


@pytest.mark.parametrize("field", ["access_token", "transaction_id", "bundle_key"])
def test_lone_surrogate_in_inquiry_fields_is_invalid_json(
    stub_client: TestClient, field: str
) -> None:
    headers, bundle_key = _tokened(stub_client)
    body = {"bundle_key": bundle_key, field: "\udbff"}
    response = stub_client.post(INQUIRE_URL, content=json.dumps(body).encode(), headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == INVALID_JSON


def test_paired_surrogates_are_ordinary_text() -> None:
    # An emoji escaped as a surrogate pair is valid Unicode: accepted.
    assert parse_json_object(b'{"name": "\\ud83d\\ude00"}') == {"name": "\U0001f600"}


def test_nesting_at_the_limit_is_accepted_one_more_is_refused() -> None:
    def nested(levels: int) -> bytes:  # the outer object is level 1
        inner = levels - 1
        return b'{"a": ' + b"[" * inner + b"]" * inner + b"}"

    parse_json_object(nested(MAX_DEPTH))
    with pytest.raises(InvalidJsonError):
        parse_json_object(nested(MAX_DEPTH + 1))


def test_any_json_value_gets_the_same_checks_as_an_object() -> None:
    # parse_json (the demo's) leaves the shape to its caller, never the checks.
    assert parse_json(b"[1, 2]") == [1, 2]
    for raw in (b'"a\\u0000"', b'["\\ud800"]', b"NaN", b"[" * 17 + b"]" * 17):
        with pytest.raises(InvalidJsonError):
            parse_json(raw)
    with pytest.raises(InvalidJsonError):
        parse_json_object(b"[1, 2]")


# --- defect 5: a big body is read only for a client with a live token -----------


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "token_missing"),
        (bearer("not-a-token"), "token_invalid"),
    ],
)
def test_big_body_without_a_live_token_is_refused_unread(
    stub_client: TestClient, headers: dict[str, str], error: str
) -> None:
    def body() -> object:  # chunked: no declared length, so "maybe big"
        for _ in range(16):
            yield b"A" * 65536

    response = stub_client.post(
        URL, content=body(), headers={"Content-Type": "application/json", **headers}
    )
    assert response.status_code == 403
    assert response.json()["error_code"] == CATALOGUE[error].code
    assert response.headers["connection"] == "close"


def test_header_refusal_speaks_accept_language(stub_client: TestClient) -> None:
    response = stub_client.post(
        URL,
        content=b"{" + b" " * 100_000 + b"}",
        headers={"Content-Type": "application/json", "Accept-Language": "ar-EG,ar;q=0.9"},
    )
    assert response.status_code == 403
    assert response.json()["message"] == CATALOGUE["token_missing"].ar


def test_small_bodies_still_answer_in_their_own_lang(stub_client: TestClient) -> None:
    # A refusal after reading a small body keeps Valify's behaviour: the body's lang.
    response = stub_client.post(URL, json={"first_img": "x", "lang": "ar"})
    assert response.status_code == 403
    assert response.json()["message"] == CATALOGUE["token_missing"].ar


@pytest.mark.parametrize(
    "path", ["/api/o/token/", INQUIRE_URL, "/api/v1/transaction/fetch-images/"]
)
def test_endpoints_without_images_take_only_small_bodies(
    stub_client: TestClient, path: str
) -> None:
    headers, _ = _tokened(stub_client)
    response = stub_client.post(path, content=b"x" * 70_000, headers=headers)
    assert response.status_code == 413
    assert response.json()["error_code"] == CATALOGUE["body_too_large"].code


# --- defect 4: metrics labels are bounded ---------------------------------------


def _scrape(client: TestClient) -> str:
    response = client.get("/metrics", headers=bearer(TEST_METRICS_TOKEN))
    assert response.status_code == 200
    return response.text


def test_junk_methods_do_not_grow_metrics(stub_client: TestClient) -> None:
    stub_client.request("FIRST", URL)  # the OTHER series of this route exist from here on
    _scrape(stub_client)  # and the scrape's own series
    before = len(_scrape(stub_client))
    for i in range(300):
        response = stub_client.request(f"JUNK{i}", URL)
        assert response.status_code in (404, 405)
    text = _scrape(stub_client)
    assert "JUNK" not in text
    assert 'method="OTHER"' in text
    # Counters and sums gain a few digits; nothing is added per method.
    assert len(text) - before < 512


def test_metrics_need_the_scrape_token_in_production(stub_client: TestClient) -> None:
    assert stub_client.get("/metrics").status_code == 404
    assert stub_client.get("/metrics", headers=bearer("wrong")).status_code == 404
    assert stub_client.get("/metrics", headers=bearer(TEST_METRICS_TOKEN)).status_code == 200
