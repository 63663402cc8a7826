"""POST /api/o/token/: password and refresh grants, OAuth error bodies."""

from __future__ import annotations

import base64

from fastapi.testclient import TestClient
from sqlalchemy import select

from facematch.store.models import AccessToken
from facematch.store.security import digest_secret
from tests.service.support import Credentials, bearer, provision

TOKEN_URL = "/api/o/token/"


def password_form(creds: Credentials, **overrides: str) -> dict[str, str]:
    form = {
        "grant_type": "password",
        "username": creds.username,
        "password": creds.password,
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
    }
    form.update(overrides)
    return form


def test_password_grant_returns_valify_token_shape(client: TestClient) -> None:
    creds = provision(client)
    response = client.post(TOKEN_URL, data=password_form(creds))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type", "scope", "refresh_token"}
    assert body["expires_in"] == 600
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "read write"
    assert body["access_token"] != body["refresh_token"]
    assert response.headers["cache-control"] == "no-store"


def test_token_takes_trials_and_lifetime_from_the_bundle(client: TestClient) -> None:
    creds = provision(client, token_trials=7, token_lifetime_s=120)
    body = client.post(TOKEN_URL, data=password_form(creds)).json()
    assert body["expires_in"] == 120
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        row = session.scalar(
            select(AccessToken).where(AccessToken.token_hash == digest_secret(body["access_token"]))
        )
        assert row is not None
        assert row.trials_remaining == 7
        # Only digests are stored, never the token itself.
        assert body["access_token"] not in (row.token_hash, row.refresh_token_hash)


def test_path_without_trailing_slash_works_without_redirect(client: TestClient) -> None:
    creds = provision(client)
    response = client.post("/api/o/token", data=password_form(creds), follow_redirects=False)
    assert response.status_code == 200


def test_client_credentials_in_basic_header(client: TestClient) -> None:
    creds = provision(client)
    form = password_form(creds)
    del form["client_id"], form["client_secret"]
    basic = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
    response = client.post(TOKEN_URL, data=form, headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200, response.text


def test_refresh_grant_rotates_the_pair_once(client: TestClient) -> None:
    creds = provision(client)
    first = client.post(TOKEN_URL, data=password_form(creds)).json()
    refresh_form = {
        "grant_type": "refresh_token",
        "refresh_token": first["refresh_token"],
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
    }
    second = client.post(TOKEN_URL, data=refresh_form)
    assert second.status_code == 200, second.text
    assert second.json()["access_token"] != first["access_token"]
    # The refresh token is single-use.
    again = client.post(TOKEN_URL, data=refresh_form)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    # The old access token was revoked with it.
    old = client.post(
        "/api/v1/face/match/",
        json={"first_img": "x", "second_img": "y", "bundle_key": creds.bundle_key},
        headers=bearer(first["access_token"]),
    )
    assert old.status_code == 403
    assert old.json()["error_code"] == 1102


def test_refresh_token_of_another_application_is_refused(client: TestClient) -> None:
    mine, other = provision(client), provision(client)
    token = client.post(TOKEN_URL, data=password_form(mine)).json()
    response = client.post(
        TOKEN_URL,
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": other.client_id,
            "client_secret": other.client_secret,
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_user_of_another_organisation_cannot_use_this_client(client: TestClient) -> None:
    mine, other = provision(client), provision(client)
    form = password_form(mine, username=other.username, password=other.password)
    response = client.post(TOKEN_URL, data=form)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_oauth_errors(client: TestClient) -> None:
    creds = provision(client)
    cases = [
        (password_form(creds, password="wrong"), 400, "invalid_grant"),
        (password_form(creds, username="nobody-here"), 400, "invalid_grant"),
        (password_form(creds, client_secret="wrong"), 401, "invalid_client"),
        (password_form(creds, client_id="unknown"), 401, "invalid_client"),
        (password_form(creds, grant_type="client_credentials"), 400, "unsupported_grant_type"),
        (
            {k: v for k, v in password_form(creds).items() if k != "grant_type"},
            400,
            "invalid_request",
        ),
        (
            {k: v for k, v in password_form(creds).items() if k != "password"},
            400,
            "invalid_request",
        ),
        (
            {k: v for k, v in password_form(creds).items() if k != "client_secret"},
            401,
            "invalid_client",
        ),
    ]
    for form, status, error in cases:
        response = client.post(TOKEN_URL, data=form)
        assert response.status_code == status, (form, response.text)
        body = response.json()
        assert set(body) == {"error", "error_description"}
        assert body["error"] == error


def test_invalid_client_names_basic_scheme(client: TestClient) -> None:
    creds = provision(client)
    response = client.post(TOKEN_URL, data=password_form(creds, client_secret="nope"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")


def test_json_body_is_an_invalid_request(client: TestClient) -> None:
    creds = provision(client)
    response = client.post(TOKEN_URL, json=password_form(creds))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_error_description_follows_lang(client: TestClient) -> None:
    creds = provision(client)
    response = client.post(TOKEN_URL, data=password_form(creds, password="wrong", lang="ar"))
    assert response.json()["error_description"] == "بيانات الاعتماد المقدمة غير صحيحة."
