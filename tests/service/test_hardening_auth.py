"""Issue 10 (defects 7, 8, 13): deactivation, the bundle rule, unpadded base64."""

from __future__ import annotations

from fastapi.testclient import TestClient

from facematch.store import repository
from facematch.store.db import session_scope
from facematch.store.models import Bundle, Organisation
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
