"""How often a face-match call commits, counted on the app's database engine.

A successful call commits twice (open: trial, row, images, quota; finish: the
outcome) and never on its way out (the response is signed with a secret read,
not written). Counted with SQLAlchemy's connection events, on both backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event, update

from facematch.store.db import session_scope
from facematch.store.models import Bundle
from tests.service.support import Credentials, bearer, issue_token, provision, script
from tests.service.test_transactions import hmac_ok, hmac_secret

MATCH = "/api/v1/face/match/"
MATCH_V11 = "/api/v1.1/face/match/"


@contextmanager
def counted_commits(client: TestClient) -> Iterator[list[str]]:
    """Every COMMIT the app's engine sends while the block runs."""
    engine = client.app.state.db_engine  # type: ignore[attr-defined]
    commits: list[str] = []

    def on_commit(_connection: Any) -> None:
        commits.append("commit")

    event.listen(engine, "commit", on_commit)
    try:
        yield commits
    finally:
        event.remove(engine, "commit", on_commit)


def _call(client: TestClient, creds: Credentials, token: str, *, path: str = MATCH) -> Any:
    fields = {"first_img": script("ok"), "second_img": script("ok"), "bundle_key": creds.bundle_key}
    body = {"data": fields} if path == MATCH_V11 else fields
    return client.post(path, json=body, headers=bearer(token))


def test_a_successful_match_commits_twice(stub_client: TestClient) -> None:
    for quota in (None, 5):  # an unlimited bundle, and one whose quota is taken
        creds = provision(stub_client, quota=quota)
        token = issue_token(stub_client, creds)
        for path in (MATCH, MATCH_V11):
            with counted_commits(stub_client) as commits:
                response = _call(stub_client, creds, token, path=path)
            assert response.status_code == 200, response.text
            assert response.headers["hmac"]
            assert len(commits) == 2, (quota, path)


def test_a_bundle_without_hmac_secret_gets_it_in_the_opening_commit(
    stub_client: TestClient,
) -> None:
    creds = provision(stub_client)
    with session_scope(stub_client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        session.execute(
            update(Bundle).where(Bundle.id == creds.bundle_id).values(hmac_secret_ciphertext=None)
        )
    token = issue_token(stub_client, creds)
    with counted_commits(stub_client) as commits:
        first = _call(stub_client, creds, token)
    assert first.status_code == 200, first.text
    assert len(commits) == 2
    # The secret created then is the one this and every later answer is signed with.
    second = _call(stub_client, creds, token)
    assert second.status_code == 200, second.text
    secret = hmac_secret(stub_client, creds)
    assert hmac_ok(first, secret)
    assert hmac_ok(second, secret)


def test_a_refused_call_commits_only_its_trial(stub_client: TestClient) -> None:
    creds = provision(stub_client)
    token = issue_token(stub_client, creds)
    with counted_commits(stub_client) as commits:
        response = stub_client.post(
            MATCH,
            json={"first_img": script("ok"), "second_img": script("ok"), "bundle_key": "nope"},
            headers=bearer(token),
        )
    assert response.status_code == 401
    assert response.json()["trials_remaining"] == 2
    assert len(commits) == 1
