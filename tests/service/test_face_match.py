"""POST /api/v1/face/match/ and /api/v1.1/face/match/ with the real engine."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageEnhance
from sqlalchemy import select

from facematch.store.models import Transaction
from facematch.store.sealed import open_reference_embedding
from facematch.store.vault import VaultError
from tests.service.support import bearer, issue_token, png_b64, provision

URL = "/api/v1/face/match/"


def _transaction(client: TestClient, transaction_id: str) -> Transaction:
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        row = session.scalar(select(Transaction).where(Transaction.id == transaction_id))
        assert row is not None
        return row


def test_same_person_matches_with_exact_response_shape(
    client: TestClient, faces: dict[str, str]
) -> None:
    creds = provision(client)
    token = issue_token(client, creds)
    response = client.post(
        URL,
        json={
            "first_img": faces["same_a"],
            "second_img": faces["same_b"],
            "bundle_key": creds.bundle_key,
        },
        headers=bearer(token),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"result", "transaction_id", "trials_remaining"}
    assert set(body["result"]) == {"is_similar", "confidence"}
    assert body["result"]["is_similar"] is True
    assert 0.5 < body["result"]["confidence"] <= 1.0
    assert body["trials_remaining"] == 2

    row = _transaction(client, body["transaction_id"])
    assert row.outcome == "success"
    assert row.organisation_id == creds.organisation_id
    assert row.is_similar is True
    assert row.first_box is not None
    assert row.second_box is not None
    assert row.reference_model_id == client.app.state.matcher.model_id  # type: ignore[attr-defined]
    # The ID side's descriptor, stored encrypted (biometric data) and bound to this row.
    vault = client.app.state.vault  # type: ignore[attr-defined]
    descriptor = open_reference_embedding(vault, row.id, row.reference_embedding)
    assert np.frombuffer(descriptor, np.float32).shape == (128,)
    assert descriptor not in row.reference_embedding
    with pytest.raises(VaultError):
        open_reference_embedding(vault, "another-transaction", row.reference_embedding)


def test_different_people_do_not_match(client: TestClient, faces: dict[str, str]) -> None:
    creds = provision(client)
    response = client.post(
        "/api/v1/face/match",  # the sample client's path: no trailing slash
        json={
            "first_img": faces["same_a"],
            "second_img": faces["other"],
            "bundle_key": creds.bundle_key,
        },
        headers=bearer(issue_token(client, creds)),
        follow_redirects=False,
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"]["is_similar"] is False
    assert response.json()["result"]["confidence"] < 0.5


def test_v11_takes_fields_in_data(client: TestClient, faces: dict[str, str]) -> None:
    creds = provision(client)
    token = issue_token(client, creds)
    data = {
        "first_img": faces["same_a"],
        "second_img": faces["same_b"],
        "bundle_key": creds.bundle_key,
    }
    for path in ("/api/v1.1/face/match/", "/api/v1.1/face/match"):
        response = client.post(path, json={"data": data}, headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json()["result"]["is_similar"] is True


def test_authentication_header_is_accepted(client: TestClient, faces: dict[str, str]) -> None:
    creds = provision(client)
    token = issue_token(client, creds)
    for header in (f"Bearer {token}", token):
        response = client.post(
            URL,
            json={
                "first_img": faces["same_a"],
                "second_img": faces["same_b"],
                "bundle_key": creds.bundle_key,
            },
            headers={"Authentication": header},
        )
        assert response.status_code == 200, response.text


def test_reference_variant_matches_against_stored_id_face(
    client: TestClient, faces: dict[str, str]
) -> None:
    creds = provision(client)
    token = issue_token(client, creds)
    first = client.post(
        URL,
        json={
            "first_img": faces["same_a"],
            "second_img": faces["same_b"],
            "bundle_key": creds.bundle_key,
        },
        headers=bearer(token),
    ).json()
    same = client.post(
        URL,
        json={
            "first_img": faces["same_c"],
            "transaction_id": first["transaction_id"],
            "bundle_key": creds.bundle_key,
        },
        headers=bearer(token),
    )
    assert same.status_code == 200, same.text
    assert same.json()["result"]["is_similar"] is True
    assert same.json()["trials_remaining"] == 1
    other = client.post(
        URL,
        json={
            "first_img": faces["other"],
            "transaction_id": same.json()["transaction_id"],
            "bundle_key": creds.bundle_key,
        },
        headers=bearer(token),
    )
    # A chained reference: the second transaction carried the ID face on.
    assert other.status_code == 200, other.text
    assert other.json()["result"]["is_similar"] is False
    row = _transaction(client, other.json()["transaction_id"])
    assert row.reference_transaction_id == same.json()["transaction_id"]


def test_reference_of_another_organisation_is_not_found(
    client: TestClient, faces: dict[str, str]
) -> None:
    mine, theirs = provision(client), provision(client)
    theirs_tx = client.post(
        URL,
        json={
            "first_img": faces["same_a"],
            "second_img": faces["same_b"],
            "bundle_key": theirs.bundle_key,
        },
        headers=bearer(issue_token(client, theirs)),
    ).json()["transaction_id"]
    response = client.post(
        URL,
        json={
            "first_img": faces["same_c"],
            "transaction_id": theirs_tx,
            "bundle_key": mine.bundle_key,
        },
        headers=bearer(issue_token(client, mine)),
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error_code"] == 2201
    assert body["transaction_id"] != theirs_tx
    assert body["trials_remaining"] == 2


def test_no_face_is_a_422_with_transaction(client: TestClient, faces: dict[str, str]) -> None:
    creds = provision(client)
    response = client.post(
        URL,
        json={
            "first_img": faces["same_a"],
            "second_img": png_b64(),
            "bundle_key": creds.bundle_key,
            "lang": "ar",
        },
        headers=bearer(issue_token(client, creds)),
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error_code"] == 2101
    assert body["message"] == "لم يتم العثور على وجه في الصورة."
    assert body["field"] == "second_img"
    assert body["trials_remaining"] == 2
    row = _transaction(client, body["transaction_id"])
    assert (row.outcome, row.error_code) == ("error", 2101)
    assert row.reference_embedding is None


@pytest.mark.parametrize(
    ("factor", "code", "english"),
    [
        (0.1, 2104, "The face in the image is too dark; retake the photo in better light."),
        (
            3.5,
            2105,
            "The face in the image is washed out by light or glare; retake the photo "
            "without direct light or flash on the face.",
        ),
    ],
    ids=["dark", "over-exposed"],
)
def test_a_badly_lit_face_says_what_to_retake(
    client: TestClient, faces: dict[str, str], factor: float, code: int, english: str
) -> None:
    with Image.open(io.BytesIO(base64.b64decode(faces["same_b"]))) as image:
        lit = ImageEnhance.Brightness(image.convert("RGB")).enhance(factor)
    out = io.BytesIO()
    lit.save(out, "JPEG", quality=92)
    creds = provision(client)
    response = client.post(
        URL,
        json={
            "first_img": faces["same_a"],
            "second_img": base64.b64encode(out.getvalue()).decode("ascii"),
            "bundle_key": creds.bundle_key,
        },
        headers=bearer(issue_token(client, creds)),
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["error_code"], body["message"], body["field"]) == (code, english, "second_img")
    row = _transaction(client, body["transaction_id"])
    assert (row.outcome, row.error_code) == ("error", code)


def test_each_call_consumes_one_trial_then_403(client: TestClient, faces: dict[str, str]) -> None:
    creds = provision(client)
    token = issue_token(client, creds)
    payloads = [
        {
            "first_img": faces["same_a"],
            "second_img": faces["same_b"],
            "bundle_key": creds.bundle_key,
        },
        {"first_img": faces["same_a"], "bundle_key": creds.bundle_key},  # 400, still a trial
        {"first_img": faces["same_a"], "second_img": faces["same_b"], "bundle_key": "wrong"},
    ]
    remaining = [
        client.post(URL, json=p, headers=bearer(token)).json()["trials_remaining"] for p in payloads
    ]
    assert remaining == [2, 1, 0]
    used_up = client.post(URL, json=payloads[0], headers=bearer(token))
    assert used_up.status_code == 403
    assert used_up.json()["error_code"] == 1104


def test_quota_is_taken_per_transaction(client: TestClient, faces: dict[str, str]) -> None:
    creds = provision(client, quota=1)
    token = issue_token(client, creds)
    payload = {
        "first_img": faces["same_a"],
        "second_img": faces["same_b"],
        "bundle_key": creds.bundle_key,
    }
    assert client.post(URL, json=payload, headers=bearer(token)).status_code == 200
    refused = client.post(URL, json=payload, headers=bearer(token))
    assert refused.status_code == 429
    assert refused.json()["error_code"] == 1301
    assert "transaction_id" not in refused.json()


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) >= {"/api/o/token/", "/api/v1/face/match/", "/api/v1.1/face/match/"}
    match = schema["paths"]["/api/v1/face/match/"]["post"]
    body = match["requestBody"]["content"]["application/json"]["schema"]
    assert {"first_img", "second_img", "transaction_id", "bundle_key", "lang"} <= set(
        body["properties"]
    )
    assert {"400", "401", "403", "413", "415", "422", "429", "500"} <= set(match["responses"])
    assert client.get("/docs").status_code == 200


def test_unreadable_images_are_processing_errors(client: TestClient, faces: dict[str, str]) -> None:
    import base64

    creds = provision(client)
    jpeg = base64.b64decode(faces["same_a"])
    cases = {
        "not base64 at all!": 2001,
        base64.b64encode(b"just some text, not an image " * 20).decode(): 2002,
        base64.b64encode(jpeg[: len(jpeg) // 3]).decode(): 2003,
    }
    for image, code in cases.items():
        token = issue_token(client, creds)
        response = client.post(
            URL,
            json={
                "first_img": image,
                "second_img": faces["same_b"],
                "bundle_key": creds.bundle_key,
            },
            headers=bearer(token),
        )
        assert response.status_code == 422, response.text
        assert response.json()["error_code"] == code, response.text
        assert response.json()["field"] == "first_img"
