"""Issue 10 (defects 7, 8, 13): deactivation, the bundle rule, unpadded base64."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from httpx import Response
from pydantic import ValidationError
from sqlalchemy import update

from facematch.cli import cli
from facematch.settings import MAX_TOKEN_LIFETIME_S, Settings
from facematch.store import repository
from facematch.store.db import session_scope
from facematch.store.models import Application, Bundle, Organisation, User
from tests.service.support import Credentials, bearer, issue_token, provision, script

URL = "/api/v1/face/match/"


def test_unpadded_base64_images_match_through_the_app(
    client: TestClient, faces: dict[str, str]
) -> None:
    # Valify clients strip the '=' padding; the real photos must still match.
    first, second = faces["same_a"].rstrip("="), faces["same_b"].rstrip("=")
    assert (first, second) != (faces["same_a"], faces["same_b"])  # padding was there to strip
    creds = provision(client)
    response = client.post(
        URL,
        json={"first_img": first, "second_img": second, "bundle_key": creds.bundle_key},
        headers=bearer(issue_token(client, creds)),
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"]["is_similar"] is True


# --- defect 8: a token spends only its own bundle ------------------------------


def _second_bundle(client: TestClient, creds: Credentials, *, quota: int) -> tuple[int, str]:
    """Another bundle of the same organisation: (id, key)."""
    with session_scope(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        org = session.get(Organisation, creds.organisation_id)
        bundle, key = repository.create_bundle(session, organisation=org, quota=quota)
        return bundle.id, key


def test_key_of_another_bundle_of_the_organisation_is_refused_like_an_unknown_key(
    stub_client: TestClient,
) -> None:
    creds = provision(stub_client, quota=5)
    other_id, other_key = _second_bundle(stub_client, creds, quota=5)
    token = issue_token(stub_client, creds)
    body = {"first_img": script("match"), "second_img": script("match")}

    foreign = stub_client.post(URL, json={**body, "bundle_key": other_key}, headers=bearer(token))
    unknown = stub_client.post(
        URL, json={**body, "bundle_key": "0" * 48, "lang": "ar"}, headers=bearer(token)
    )
    assert foreign.status_code == unknown.status_code == 401
    assert foreign.json() == {
        "message": "Invalid bundle key.",
        "error_code": 1201,
        "trials_remaining": 2,
    }
    assert unknown.json()["error_code"] == 1201
    with stub_client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        assert session.get(Bundle, other_id).quota_remaining == 5  # nothing spent there
    # The token's own key still works.
    own = stub_client.post(
        URL, json={**body, "bundle_key": creds.bundle_key}, headers=bearer(token)
    )
    assert own.status_code == 200, own.text


def test_read_endpoints_take_only_the_tokens_own_bundle_key(stub_client: TestClient) -> None:
    creds = provision(stub_client)
    _, other_key = _second_bundle(stub_client, creds, quota=5)
    token = issue_token(stub_client, creds)
    for path in ("/api/v1/transaction/inquire/", "/api/v1/transaction/fetch-images/"):
        response = stub_client.post(
            path,
            json={"bundle_key": other_key, "transaction_id": "x"},
            headers=bearer(token),
        )
        assert response.status_code == 401, response.text
        assert response.json()["error_code"] == 1201


# --- defect 7: deactivation and the token-lifetime bound -----------------------


def _admin(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["admin", "--database-url", database_url, *args])


def _call(client: TestClient, creds: Credentials, token: str) -> Response:
    body = {"first_img": script("match"), "second_img": script("match")}
    return client.post(URL, json={**body, "bundle_key": creds.bundle_key}, headers=bearer(token))


def _token_request(client: TestClient, creds: Credentials) -> Response:
    return client.post(
        "/api/o/token/",
        data={
            "grant_type": "password",
            "username": creds.username,
            "password": creds.password,
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
        },
    )


def test_deactivate_user_revokes_its_tokens_and_refuses_new_ones(
    stub_client: TestClient, database_url: str
) -> None:
    creds = provision(stub_client)
    token = _token_request(stub_client, creds).json()
    assert _call(stub_client, creds, token["access_token"]).status_code == 200

    result = _admin(database_url, "deactivate-user", "-u", creds.username)
    assert result.exit_code == 0, result.output
    assert "1 token(s) revoked" in result.output

    refused = _call(stub_client, creds, token["access_token"])
    assert refused.status_code == 403
    assert refused.json()["error_code"] == 1102
    assert _token_request(stub_client, creds).json()["error"] == "invalid_grant"
    refresh = stub_client.post(
        "/api/o/token/",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
        },
    )
    assert refresh.json()["error"] == "invalid_grant"
    with stub_client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        assert session.get(User, creds.user_id).active is False


def test_deactivate_app_revokes_its_tokens_and_refuses_new_ones(
    stub_client: TestClient, database_url: str
) -> None:
    creds = provision(stub_client)
    tokens = [issue_token(stub_client, creds) for _ in range(2)]
    result = _admin(database_url, "deactivate-app", "--client-id", creds.client_id)
    assert result.exit_code == 0, result.output
    assert "2 token(s) revoked" in result.output
    for token in tokens:
        assert _call(stub_client, creds, token).json()["error_code"] == 1102
    refused = _token_request(stub_client, creds)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"


def test_deactivating_an_unknown_name_fails_on_stderr(database_url: str) -> None:
    assert "no user named" in _admin(database_url, "deactivate-user", "-u", "nobody-x").stderr
    missing_app = _admin(database_url, "deactivate-app", "--client-id", "nothing-x")
    assert missing_app.exit_code == 1
    assert "no application" in missing_app.stderr


@pytest.mark.parametrize("column", ["user", "application"])
def test_token_of_an_inactive_user_or_app_is_refused_even_if_not_revoked(
    stub_client: TestClient, column: str
) -> None:
    # Made inactive without revoking (by hand, by an older version): the lookup refuses.
    creds = provision(stub_client)
    token = issue_token(stub_client, creds)
    model, row_id = (
        (User, creds.user_id)
        if column == "user"
        else (
            Application,
            creds.application_id,
        )
    )
    with session_scope(stub_client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        session.execute(update(model).where(model.id == row_id).values(active=False))
    refused = _call(stub_client, creds, token)
    assert refused.status_code == 403
    assert refused.json()["error_code"] == 1102
    inquiry = stub_client.post(
        "/api/v1/transaction/inquire/",
        json={"bundle_key": creds.bundle_key, "access_token": token},
        headers=bearer(token),
    )
    assert inquiry.status_code == 403
    assert inquiry.json()["error_code"] == 1102


def test_token_lifetime_above_the_bound_is_refused_by_cli_and_store(
    stub_client: TestClient, database_url: str
) -> None:
    creds = provision(stub_client)
    org_name = f"org-{creds.username.removeprefix('user-')}"
    too_long = _admin(database_url, "create-bundle", "-o", org_name, "--token-lifetime-s", "3601")
    assert too_long.exit_code == 2
    assert "3601" in too_long.stderr
    at_bound = _admin(
        database_url, "create-bundle", "-o", org_name, "--token-lifetime-s", "3600", "--json"
    )
    assert at_bound.exit_code == 0, at_bound.output
    with session_scope(stub_client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        org = session.get(Organisation, creds.organisation_id)
        with pytest.raises(ValueError, match="token lifetime"):
            repository.create_bundle(session, organisation=org, token_lifetime_s=3601)
        with pytest.raises(ValueError, match="token lifetime"):
            repository.create_bundle(session, organisation=org, token_lifetime_s=0)
        session.rollback()
    with pytest.raises(ValidationError):
        Settings(token_lifetime_s=MAX_TOKEN_LIFETIME_S + 1)


def test_bundle_row_over_the_bound_issues_tokens_at_the_bound(stub_client: TestClient) -> None:
    # A row written before the bound existed (plain SQL skips the model's validator).
    creds = provision(stub_client)
    with session_scope(stub_client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        session.execute(
            update(Bundle).where(Bundle.id == creds.bundle_id).values(token_lifetime_s=86_400)
        )
    body = _token_request(stub_client, creds).json()
    assert body["expires_in"] == MAX_TOKEN_LIFETIME_S
