"""Issue 10 (defects 7, 8, 13): deactivation, the bundle rule, unpadded base64."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.service.support import bearer, issue_token, provision

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
