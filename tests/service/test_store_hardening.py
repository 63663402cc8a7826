"""Issue 10, defects 3, 6 and 9, through the real app on SQLite and PostgreSQL:

- 3: a retention purge that runs while a call is in flight wins: no descriptor,
  no image, and the purged transaction is never a match reference;
- 6: the heavy part of a call (decoding, sealing, inserting the images) holds no
  quota lock, and an unlimited bundle is not locked at all;
- 9: a call that died mid-way does not stay ``pending``: the housekeeping sweep
  closes it as ``abandoned``, and inquiry says so.

Interleavings are driven with events at named steps (the scripted engine's
``block``, the vault's sealing), never with sleeps; every wait is bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, text, update

from facematch.service.app import create_app
from facematch.service.application.calls import CallRecord
from facematch.service.runtime.retention_task import purge_once
from facematch.store import repository
from facematch.store.db import session_scope
from facematch.store.models import AccessToken, Bundle, Transaction, utcnow
from facematch.store.retention import purge_expired
from facematch.store.views import TokenRef
from facematch.testing.keys import client_private_key
from tests.service.conftest import service_settings
from tests.service.support import Credentials, StubMatcher, bearer, issue_token, provision, script
from tests.service.test_transactions import client_decrypt, register_key

MATCH = "/api/v1/face/match/"
INQUIRE = "/api/v1/transaction/inquire/"
WAIT_S = 20  # bound on every wait for another thread; never reached when all is well


@pytest.fixture(scope="module")
def app_client(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The real app with the scripted engine and a deadline long enough that a call
    held at a step by the test is not cut off meanwhile."""
    stub = StubMatcher()
    app = create_app(
        service_settings(
            database_url,
            tmp_path_factory.mktemp("data"),
            max_inflight_matches=4,
            request_timeout_s=60.0,
        ),
        matcher=stub,  # type: ignore[arg-type]
    )
    app.state.stub = stub
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _factory(client: TestClient) -> Any:
    return client.app.state.session_factory  # type: ignore[attr-defined]


def _row(client: TestClient, transaction_id: str) -> Any:
    with _factory(client)() as session:
        return session.execute(
            text(
                "SELECT outcome, reference_embedding, reference_key_id, images_purged_at, "
                "(SELECT COUNT(*) FROM transaction_images i WHERE i.transaction_id = t.id) "
                "AS images FROM transactions t WHERE t.id = :t"
            ),
            {"t": transaction_id},
        ).one()


def _call(client: TestClient, creds: Credentials, first: str, **fields: str) -> Any:
    body = {"first_img": first, "bundle_key": creds.bundle_key, **fields}
    if "transaction_id" not in fields:
        body.setdefault("second_img", script("ok"))
    return client.post(MATCH, json=body, headers=bearer(issue_token(client, creds)))


# --- defect 3: the retention race ------------------------------------------------------


def test_a_purge_during_an_inflight_call_wins(app_client: TestClient) -> None:
    creds = provision(app_client)
    with session_scope(_factory(app_client)) as session:
        # Retention 0 days: the call's row is due as soon as it exists.
        session.execute(update(Bundle).where(Bundle.id == creds.bundle_id).values(retention_days=0))
    stub: StubMatcher = app_client.app.state.stub  # type: ignore[attr-defined]
    while stub.entered.acquire(blocking=False):  # permits left by earlier calls
        pass
    stub.release.clear()
    with ThreadPoolExecutor(1) as threads:
        call = threads.submit(_call, app_client, creds, script("block"))
        try:
            # The engine runs: the pending row and its images are committed.
            assert stub.entered.acquire(timeout=WAIT_S)
            with session_scope(_factory(app_client)) as session:
                report = purge_expired(session)
            assert report.transactions >= 1
        finally:
            stub.release.set()
        response = call.result(timeout=WAIT_S)
    assert response.status_code == 200, response.text
    transaction_id = response.json()["transaction_id"]

    row = _row(app_client, transaction_id)
    assert row.outcome == "success"  # the audit record of the call is kept
    assert row.images_purged_at is not None
    assert row.reference_embedding is None  # the finish did not write it back
    assert row.reference_key_id is None
    assert row.images == 0

    again = _call(app_client, creds, script("ok"), transaction_id=transaction_id)
    assert again.status_code == 422, again.text
    assert again.json()["error_code"] == 2201  # reference_not_found


def test_a_purged_row_that_still_holds_a_descriptor_is_no_reference(
    app_client: TestClient,
) -> None:
    creds = provision(app_client)
    first = _call(app_client, creds, script("ok"))
    assert first.status_code == 200, first.text
    transaction_id = first.json()["transaction_id"]
    with session_scope(_factory(app_client)) as session:
        # What the race used to leave: purged, yet with its descriptor.
        session.execute(
            update(Transaction)
            .where(Transaction.id == transaction_id)
            .values(images_purged_at=utcnow())
        )
    assert _row(app_client, transaction_id).reference_embedding is not None
    again = _call(app_client, creds, script("ok"), transaction_id=transaction_id)
    assert again.status_code == 422, again.text
    assert again.json()["error_code"] == 2201


# --- defect 6: no lock held by the heavy part ---------------------------------------------


@pytest.mark.parametrize("quota", [5, None], ids=["limited", "unlimited"])
def test_a_call_inside_its_image_step_does_not_block_another_on_the_same_bundle(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch, quota: int | None
) -> None:
    creds = provision(app_client, quota=quota)
    vault = app_client.app.state.vault  # type: ignore[attr-defined]
    real_seal = vault.seal
    inside, release = threading.Event(), threading.Event()
    held: list[str] = []
    guard = threading.Lock()

    def seal(plaintext: bytes, *, context: str) -> bytes:
        if context.startswith("image:"):
            with guard:
                first = not held
                held.append(context)
            if first:  # the first call's first image: wait here, mid-way through its images
                inside.set()
                release.wait(timeout=WAIT_S)
        return real_seal(plaintext, context=context)

    monkeypatch.setattr(vault, "seal", seal)
    with ThreadPoolExecutor(2) as threads:
        one = threads.submit(_call, app_client, creds, script("ok"))
        try:
            assert inside.wait(timeout=WAIT_S)
            # While the first call is inside its image step, a second call on the
            # same bundle takes its quota, runs and answers.
            two = threads.submit(_call, app_client, creds, script("ok")).result(timeout=WAIT_S)
        finally:
            release.set()
        assert two.status_code == 200, two.text
        assert one.result(timeout=WAIT_S).status_code == 200
    with _factory(app_client)() as session:
        left = session.get(Bundle, creds.bundle_id).quota_remaining
    assert left == (None if quota is None else quota - 2)


@pytest.mark.parametrize("quota", [5, None], ids=["limited", "unlimited"])
def test_quota_is_taken_after_the_images_are_in_and_never_for_unlimited(
    app_client: TestClient, quota: int | None
) -> None:
    creds = provision(app_client, quota=quota)
    engine = app_client.app.state.db_engine  # type: ignore[attr-defined]
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()).lower())

    event.listen(engine, "before_cursor_execute", record)
    try:
        response = _call(app_client, creds, script("ok"))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200, response.text
    quota_updates = [
        i for i, s in enumerate(statements) if s.startswith("update bundles") and "quota" in s
    ]
    image_inserts = [
        i for i, s in enumerate(statements) if s.startswith("insert into transaction_images")
    ]
    assert image_inserts
    if quota is None:
        assert quota_updates == []  # no UPDATE, so no row lock, for an unlimited bundle
    else:
        assert len(quota_updates) == 1
        assert quota_updates[0] > max(image_inserts)  # the lock is taken after the images


def test_a_call_on_an_exhausted_bundle_is_refused_before_any_image_work(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = provision(app_client, quota=0)
    vault = app_client.app.state.vault  # type: ignore[attr-defined]
    sealed: list[str] = []
    real_seal = vault.seal
    monkeypatch.setattr(
        vault,
        "seal",
        lambda data, *, context: sealed.append(context) or real_seal(data, context=context),
    )
    response = _call(app_client, creds, script("ok"))
    assert response.status_code == 429, response.text
    assert not [c for c in sealed if c.startswith("image:")]


# --- defect 9: stuck pending rows ---------------------------------------------------------


def _die_mid_way(client: TestClient, creds: Credentials) -> str:
    """What a call leaves when its worker dies after recording it: the real opening step
    (quota, pending row, images), and nothing after."""
    with _factory(client)() as session:
        token = session.scalar(
            select(AccessToken).where(AccessToken.bundle_id == creds.bundle_id).limit(1)
        )
        ref = TokenRef.of(token)
    service = client.app.state.services.face_match  # type: ignore[attr-defined]
    body = {"bundle_key": creds.bundle_key, "first_img": script("ok"), "second_img": script("ok")}
    call = CallRecord()
    opened = service._open(ref, body, False, call)
    assert call.transaction_id == opened.transaction_id
    return str(opened.transaction_id)


def _inquire(client: TestClient, creds: Credentials, transaction_id: str) -> dict[str, Any]:
    response = client.post(
        INQUIRE,
        json={"bundle_key": creds.bundle_key, "transaction_id": transaction_id},
        headers=bearer(issue_token(client, creds)),
    )
    assert response.status_code == 200, response.text
    return client_decrypt(response.json(), client_private_key())["transactions"][0]


def test_a_call_that_died_is_closed_as_abandoned_and_inquiry_says_so(
    app_client: TestClient,
) -> None:
    creds = provision(app_client)
    register_key(app_client, creds, client_private_key())
    issue_token(app_client, creds)
    settings = app_client.app.state.settings  # type: ignore[attr-defined]
    stale_after_s = settings.request_timeout_s + settings.pending_grace_s
    dead, young = _die_mid_way(app_client, creds), _die_mid_way(app_client, creds)
    with session_scope(_factory(app_client)) as session:
        session.execute(
            update(Transaction)
            .where(Transaction.id == dead)
            .values(created_at=utcnow() - timedelta(seconds=stale_after_s + 1))
        )
    assert _inquire(app_client, creds, dead)["outcome"] == "pending"

    report = purge_once(_factory(app_client), stale_after_s)
    assert report.abandoned == 1

    view = _inquire(app_client, creds, dead)
    assert view["outcome"] == "abandoned"
    assert view["result"] is None
    assert view["error_code"] is None
    assert _inquire(app_client, creds, young)["outcome"] == "pending"  # still within its time
    # A finish arriving after the sweep does not rewrite the closed record.
    with session_scope(_factory(app_client)) as session:
        assert not repository.finish_transaction(
            session, transaction_id=dead, outcome="success", processing_ms=1.0
        )
    assert _row(app_client, dead).outcome == "abandoned"
    assert purge_once(_factory(app_client), stale_after_s).abandoned == 0


def test_the_server_closes_stale_pending_rows_at_startup_and_periodically(
    app_client: TestClient, database_url: str, tmp_path: Path
) -> None:
    creds = provision(app_client)
    issue_token(app_client, creds)
    dead = _die_mid_way(app_client, creds)
    with session_scope(_factory(app_client)) as session:
        session.execute(
            update(Transaction)
            .where(Transaction.id == dead)
            .values(created_at=utcnow() - timedelta(seconds=60 + 10 + 1))
        )
    # A second server on the same database, with the periodic housekeeping on.
    settings = service_settings(
        database_url, tmp_path, purge_interval_s=3600, request_timeout_s=60, pending_grace_s=10
    )
    app = create_app(settings, matcher=app_client.app.state.stub)  # type: ignore[attr-defined]
    with TestClient(app):
        for _ in range(WAIT_S * 100):  # its first run starts with the server; bounded wait
            if _row(app_client, dead).outcome != "pending":
                break
            threading.Event().wait(0.01)
    assert _row(app_client, dead).outcome == "abandoned"


def test_the_grace_period_cannot_be_set_below_the_hard_timeout_backstop(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pending_grace_s"):
        service_settings("sqlite://", tmp_path, pending_grace_s=1)
