"""Token endpoint: failure throttling in fixed memory, no timing oracle, bounded hashing."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from facematch.service.app import create_app
from facematch.service.errors import CATALOGUE
from facematch.service.runtime.throttle import FailureThrottle, TokenGuard
from facematch.store import repository, security
from facematch.store.db import session_scope
from facematch.store.models import User
from tests.service.conftest import service_settings
from tests.service.support import Credentials, StubMatcher, provision

TOKEN_URL = "/api/o/token/"


# --- the throttle itself --------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_allows_a_burst_then_drains_evenly() -> None:
    clock = FakeClock()
    throttle = FailureThrottle(limit=3, window_s=30, clock=clock)  # drains 1 per 10 s
    for _ in range(3):
        assert throttle.retry_after_s("alice") is None
        throttle.record_failure("alice")
    assert throttle.retry_after_s("alice") == 10
    assert throttle.retry_after_s("bob") is None  # other keys are not affected
    clock.now += 9.5
    assert throttle.retry_after_s("alice") == 1
    clock.now += 0.6
    assert throttle.retry_after_s("alice") is None
    throttle.record_failure("alice")
    assert throttle.retry_after_s("alice") == 10


def test_throttle_memory_does_not_grow_with_junk_keys() -> None:
    throttle = FailureThrottle(limit=5, window_s=60, slots=1024)
    before = (throttle.memory_bytes, sys.getsizeof(throttle._levels))
    for number in range(50_000):
        throttle.record_failure(f"junk-{number}-\ud800")  # lone surrogates too
    assert (throttle.memory_bytes, sys.getsizeof(throttle._levels)) == before
    assert throttle.memory_bytes == 2 * 2 * 1024 * 8


# --- through the app --------------------------------------------------------------


@pytest.fixture(scope="module")
def throttled(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The real app with small failure limits (3 per username, 6 per client)."""
    settings = service_settings(
        database_url,
        tmp_path_factory.mktemp("data"),
        token_throttle_username_failures=3,
        token_throttle_client_failures=6,
        token_throttle_window_s=600,
        password_hash_concurrency=1,
    )
    app = create_app(settings, matcher=StubMatcher(model_id="stub"))  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def fresh_client_address(throttled: TestClient) -> None:
    # Every test starts with empty tables, as a fresh worker would.
    throttled.app.state.token_guard = None  # type: ignore[attr-defined]


def _form(creds: Credentials, **overrides: str) -> dict[str, str]:
    form = {
        "grant_type": "password",
        "username": creds.username,
        "password": creds.password,
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
    }
    return {**form, **overrides}


@pytest.mark.usefixtures("fresh_client_address")
def test_username_is_throttled_after_failures_even_with_the_right_password(
    throttled: TestClient,
) -> None:
    creds = provision(throttled)
    for _ in range(3):
        wrong = throttled.post(TOKEN_URL, data=_form(creds, password="wrong"))
        assert wrong.json()["error"] == "invalid_grant"
    refused = throttled.post(TOKEN_URL, data=_form(creds, lang="ar"))
    assert refused.status_code == 429
    assert refused.json() == {
        "error": "slow_down",
        "error_description": CATALOGUE["oauth_slow_down"].ar,
    }
    assert 1 <= int(refused.headers["retry-after"]) <= 200  # 600 s / 3 failures per bucket
    assert refused.headers["cache-control"] == "no-store"
    # Another user from the same client is not held back by this username.
    other = provision(throttled)
    assert throttled.post(TOKEN_URL, data=_form(other)).status_code == 200


@pytest.mark.usefixtures("fresh_client_address")
def test_unknown_username_is_throttled_exactly_like_a_known_one(throttled: TestClient) -> None:
    creds = provision(throttled)
    answers = {}
    for username in (creds.username, f"nobody-{uuid.uuid4().hex[:8]}"):
        throttled.app.state.token_guard = None  # type: ignore[attr-defined]
        form = _form(creds, username=username, password="wrong")
        answers[username] = [
            (r.status_code, r.json()["error"], "retry-after" in r.headers)
            for r in (throttled.post(TOKEN_URL, data=form) for _ in range(5))
        ]
    known, unknown = answers.values()
    assert known == unknown
    assert known[-1] == (429, "slow_down", True)


@pytest.mark.usefixtures("fresh_client_address")
def test_client_address_is_throttled_across_usernames(throttled: TestClient) -> None:
    creds = provision(throttled)
    for number in range(6):  # 6 different usernames: only the client limit applies
        form = _form(creds, username=f"guess-{number}-{uuid.uuid4().hex[:6]}", password="x")
        assert throttled.post(TOKEN_URL, data=form).status_code == 400
    refused = throttled.post(TOKEN_URL, data=_form(creds))
    assert refused.status_code == 429
    assert refused.json()["error"] == "slow_down"
    # Wrong client secrets count against the client address too (a fresh table).
    throttled.app.state.token_guard = None  # type: ignore[attr-defined]
    for _ in range(6):
        bad = throttled.post(TOKEN_URL, data=_form(creds, client_secret="nope"))
        assert bad.status_code == 401
    assert throttled.post(TOKEN_URL, data=_form(creds)).status_code == 429


@pytest.mark.usefixtures("fresh_client_address")
def test_malformed_requests_do_not_count_as_failures(throttled: TestClient) -> None:
    creds = provision(throttled)
    for _ in range(10):
        response = throttled.post(TOKEN_URL, data=_form(creds, grant_type="client_credentials"))
        assert response.json()["error"] == "unsupported_grant_type"
    assert throttled.post(TOKEN_URL, data=_form(creds)).status_code == 200


# --- no timing oracle: every refusal of a password grant costs one scrypt check ----


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch, throttled: TestClient) -> list[dict[str, Any]]:
    """Each scrypt computation: its cost, and how many password checks were running."""
    calls: list[dict[str, Any]] = []
    real = security._scrypt

    def spy(password: str, salt: bytes, cost: security.ScryptCost, dklen: int) -> bytes:
        # None outside a token request (provision() hashes passwords too).
        guard: TokenGuard | None = throttled.app.state.token_guard  # type: ignore[attr-defined]
        running = guard.password_checks.borrowed_tokens if guard is not None else None
        calls.append({"cost": cost, "running": running})
        return real(password, salt, cost, dklen)

    monkeypatch.setattr(security, "_scrypt", spy)
    return calls


@pytest.mark.usefixtures("fresh_client_address")
def test_every_password_refusal_costs_one_check_at_todays_cost(
    throttled: TestClient, scrypt_calls: list[dict[str, Any]]
) -> None:
    creds, other_org = provision(throttled), provision(throttled)
    inactive = provision(throttled)
    with session_scope(throttled.app.state.session_factory) as session:  # type: ignore[attr-defined]
        session.execute(update(User).where(User.id == inactive.user_id).values(active=False))
    cases = {
        "unknown username": _form(creds, username=f"nobody-{uuid.uuid4().hex[:8]}"),
        "wrong password": _form(creds, password="wrong"),
        "inactive user": _form(creds, username=inactive.username, password=inactive.password),
        "user of another organisation": _form(
            creds, username=other_org.username, password=other_org.password
        ),
        # Usernames no row can hold are not looked up (NUL is an error on PostgreSQL).
        "username with NUL": _form(creds, username="a\x00b"),
        "username too long": _form(creds, username="u" * 151),
    }
    for case, form in cases.items():
        throttled.app.state.token_guard = None  # type: ignore[attr-defined]
        scrypt_calls.clear()
        response = throttled.post(TOKEN_URL, data=form)
        assert response.json()["error"] == "invalid_grant", case
        assert [call["cost"] for call in scrypt_calls] == [security.PASSWORD_COST], case
        # ... and it ran under the bound on concurrent checks (1 in this app).
        assert [call["running"] for call in scrypt_calls] == [1], case


@pytest.mark.usefixtures("fresh_client_address")
def test_throttled_request_checks_no_password(
    throttled: TestClient, scrypt_calls: list[dict[str, Any]]
) -> None:
    creds = provision(throttled)
    for _ in range(3):
        throttled.post(TOKEN_URL, data=_form(creds, password="wrong"))
    scrypt_calls.clear()
    assert throttled.post(TOKEN_URL, data=_form(creds)).status_code == 429
    assert scrypt_calls == []


@pytest.mark.usefixtures("fresh_client_address")
def test_successful_login_rehashes_a_hash_made_with_other_parameters(
    throttled: TestClient,
) -> None:
    creds = provision(throttled)
    old = security.ScryptCost(n=2**11, r=8, p=1)  # not today's cost (the tests' cheap one)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(security, "PASSWORD_COST", old)
        old_hash = security.hash_password(creds.password)
    with session_scope(throttled.app.state.session_factory) as session:  # type: ignore[attr-defined]
        repository.get_user(session, username=creds.username).password_hash = old_hash
    assert throttled.post(TOKEN_URL, data=_form(creds)).status_code == 200
    with throttled.app.state.session_factory() as session:  # type: ignore[attr-defined]
        stored = repository.get_user(session, username=creds.username).password_hash
    assert stored != old_hash
    assert not security.needs_rehash(stored)
    assert security.verify_password(creds.password, stored)


@pytest.mark.usefixtures("fresh_client_address")
def test_client_id_no_row_can_hold_is_an_invalid_client(throttled: TestClient) -> None:
    # Sent to PostgreSQL, a NUL in the query raised DataError: a 500.
    creds = provision(throttled)
    for client_id in ("a\x00b", "c" * 101):
        response = throttled.post(TOKEN_URL, data=_form(creds, client_id=client_id))
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_client"
