"""Transaction inquiry, fetch-images, signed responses, images at rest and retention,
through the real app on SQLite and PostgreSQL (fixtures of tests/service/conftest.py).

The client side is written here from docs/transactions.md, independently of the
server code: HMAC-SHA512 over the raw body, RSA-OAEP-SHA256 unwrapping, AES-256-GCM.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select, text, update

from facematch.service.errors import CATALOGUE, LANGS
from facematch.store.db import session_scope
from facematch.store.models import AccessToken, Bundle, Organisation, Transaction, utcnow
from facematch.store.retention import purge_expired
from facematch.store.sealed import ensure_bundle_hmac_secret
from facematch.store.vault import new_key_spec, vault_from_specs
from facematch.testing.keys import client_private_key, other_client_private_key, public_pem
from tests.service.support import (
    Credentials,
    bearer,
    issue_token,
    provision,
    script,
    using_vault,
)

MATCH = "/api/v1/face/match/"
INQUIRE = "/api/v1/transaction/inquire/"
FETCH = "/api/v1/transaction/fetch-images/"


# --- the client side, written from the docs ------------------------------------


def client_decrypt(body: dict[str, str], private_key: rsa.RSAPrivateKey) -> Any:
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    aes_key = private_key.decrypt(base64.b64decode(body["key"]), oaep)
    blob = base64.b64decode(body["data"])
    return json.loads(AESGCM(aes_key).decrypt(blob[:12], blob[12:], None))


def hmac_ok(response: Response, secret: str) -> bool:
    expected = hmac.new(secret.encode("utf-8"), response.content, hashlib.sha512).hexdigest()
    return hmac.compare_digest(expected, response.headers.get("hmac", ""))


# --- helpers -----------------------------------------------------------------------


def _factory(client: TestClient) -> Any:
    return client.app.state.session_factory  # type: ignore[attr-defined]


def register_key(client: TestClient, creds: Credentials, private_key: rsa.RSAPrivateKey) -> None:
    with session_scope(_factory(client)) as session:
        org = session.get(Organisation, creds.organisation_id)
        assert org is not None
        org.rsa_public_key_pem = public_pem(private_key)


def hmac_secret(client: TestClient, creds: Credentials) -> str:
    """What the administrator reads with `facematch admin hmac-secret`."""
    with session_scope(_factory(client)) as session:
        bundle = session.get(Bundle, creds.bundle_id)
        assert bundle is not None
        return ensure_bundle_hmac_secret(session, client.app.state.vault, bundle)  # type: ignore[attr-defined]


def match(client: TestClient, creds: Credentials, token: str, first: str, second: str) -> Response:
    response = client.post(
        MATCH,
        json={"first_img": first, "second_img": second, "bundle_key": creds.bundle_key},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.text
    return response


def sql_scalar(client: TestClient, query: str, **params: Any) -> Any:
    with _factory(client)() as session:
        return session.execute(text(query), params).scalar()


@pytest.fixture
def org(client: TestClient) -> Credentials:
    creds = provision(client, token_trials=10)
    register_key(client, creds, client_private_key())
    return creds


# --- the round trip ------------------------------------------------------------------


def test_round_trip_match_inquire_fetch(
    client: TestClient, org: Credentials, faces: dict[str, str]
) -> None:
    token = issue_token(client, org)
    secret = hmac_secret(client, org)
    first = match(client, org, token, faces["same_a"], faces["same_b"])
    second = match(client, org, token, faces["same_c"], faces["other"])
    # The face-match responses are signed too, over the exact bytes received.
    assert hmac_ok(first, secret)
    assert hmac_ok(second, secret)
    first_id, second_id = first.json()["transaction_id"], second.json()["transaction_id"]

    # Inquiry by transaction id.
    answer = client.post(
        INQUIRE,
        json={"bundle_key": org.bundle_key, "transaction_id": first_id},
        headers=bearer(token),
    )
    assert answer.status_code == 200, answer.text
    assert hmac_ok(answer, secret)
    assert set(answer.json()) == {"key", "data"}
    (record,) = client_decrypt(answer.json(), client_private_key())["transactions"]
    assert record["transaction_id"] == first_id
    assert record["outcome"] == "success"
    assert record["result"] == first.json()["result"]
    assert record["images_stored"] == ["first_img", "second_img"]
    assert record["images_purged"] is False
    assert record["face_boxes"]["first"] is not None
    assert "reference_embedding" not in json.dumps(record)

    # Inquiry by access token: both transactions, oldest first.
    by_token = client.post(
        INQUIRE, json={"bundle_key": org.bundle_key, "access_token": token}, headers=bearer(token)
    )
    assert by_token.status_code == 200, by_token.text
    assert hmac_ok(by_token, secret)
    records = client_decrypt(by_token.json(), client_private_key())["transactions"]
    assert [r["transaction_id"] for r in records] == [first_id, second_id]
    assert records[1]["result"]["is_similar"] is False

    # Fetch images: byte for byte what was sent.
    fetched = client.post(
        FETCH,
        json={"bundle_key": org.bundle_key, "transaction_id": first_id},
        headers=bearer(token),
    )
    assert fetched.status_code == 200, fetched.text
    assert hmac_ok(fetched, secret)
    images = client_decrypt(fetched.json(), client_private_key())
    assert images["transaction_id"] == first_id
    assert base64.b64decode(images["first_img"]) == base64.b64decode(faces["same_a"])
    assert base64.b64decode(images["second_img"]) == base64.b64decode(faces["same_b"])

    # Reading back takes no trial: 10 - 2 matches.
    with _factory(client)() as session:
        trials = session.scalar(
            select(AccessToken.trials_remaining).where(AccessToken.bundle_id == org.bundle_id)
        )
    assert trials == 8


def test_images_are_encrypted_in_the_database(
    client: TestClient, org: Credentials, faces: dict[str, str]
) -> None:
    token = issue_token(client, org)
    transaction_id = match(client, org, token, faces["same_a"], faces["same_b"]).json()[
        "transaction_id"
    ]
    clear = base64.b64decode(faces["same_a"])
    with _factory(client)() as session:
        rows = session.execute(
            text(
                "SELECT role, key_id, ciphertext FROM transaction_images WHERE transaction_id = :t"
            ),
            {"t": transaction_id},
        ).all()
    assert sorted(row.role for row in rows) == ["first", "second"]
    for row in rows:
        assert row.key_id == client.app.state.vault.primary_key_id  # type: ignore[attr-defined]
        assert clear[100:400] not in bytes(row.ciphertext)


def test_tampered_response_fails_verification(
    client: TestClient, org: Credentials, faces: dict[str, str]
) -> None:
    token = issue_token(client, org)
    response = match(client, org, token, faces["same_a"], faces["same_b"])
    secret = hmac_secret(client, org)
    assert hmac_ok(response, secret)
    body = response.content
    tampered = body.replace(b'"is_similar":true', b'"is_similar":false')
    assert tampered != body
    expected = hmac.new(secret.encode(), tampered, hashlib.sha512).hexdigest()
    assert expected != response.headers["hmac"]
    # And another bundle's secret does not verify it either.
    other = provision(client)
    assert not hmac_ok(response, hmac_secret(client, other))


def test_error_responses_are_not_signed(client: TestClient, org: Credentials) -> None:
    token = issue_token(client, org)
    response = client.post(
        INQUIRE,
        json={"bundle_key": org.bundle_key, "transaction_id": "no-such-id"},
        headers=bearer(token),
    )
    assert response.status_code == 404
    assert "hmac" not in response.headers


# --- errors and isolation --------------------------------------------------------------


def test_unknown_transaction_gives_the_catalogue_error(
    client: TestClient, org: Credentials
) -> None:
    token = issue_token(client, org)
    entry = CATALOGUE["transaction_not_found"]
    for url, lang in ((INQUIRE, "en"), (FETCH, "ar")):
        response = client.post(
            url,
            json={"bundle_key": org.bundle_key, "transaction_id": "unknown-id", "lang": lang},
            headers=bearer(token),
        )
        assert response.status_code == entry.status
        assert response.json()["error_code"] == entry.code
        assert response.json()["message"] == entry.message(lang)


def test_another_organisation_cannot_see_transactions(
    client: TestClient, org: Credentials, faces: dict[str, str]
) -> None:
    token = issue_token(client, org)
    transaction_id = match(client, org, token, faces["same_a"], faces["same_b"]).json()[
        "transaction_id"
    ]
    intruder = provision(client)
    register_key(client, intruder, other_client_private_key())
    intruder_token = issue_token(client, intruder)

    for url, fields in (
        (INQUIRE, {"transaction_id": transaction_id}),
        (FETCH, {"transaction_id": transaction_id}),
    ):
        response = client.post(
            url, json={"bundle_key": intruder.bundle_key, **fields}, headers=bearer(intruder_token)
        )
        assert response.status_code == 404, response.text
        assert response.json()["error_code"] == CATALOGUE["transaction_not_found"].code

    by_token = client.post(
        INQUIRE,
        json={"bundle_key": intruder.bundle_key, "access_token": token},
        headers=bearer(intruder_token),
    )
    assert by_token.status_code == 404
    assert by_token.json()["error_code"] == CATALOGUE["access_token_not_found"].code

    # The victim's bundle key with the intruder's token: refused as an invalid bundle.
    stolen_key = client.post(
        INQUIRE,
        json={"bundle_key": org.bundle_key, "transaction_id": transaction_id},
        headers=bearer(intruder_token),
    )
    assert stolen_key.status_code == 401
    assert stolen_key.json()["error_code"] == CATALOGUE["bundle_invalid"].code


def test_reading_needs_a_live_token_and_a_registered_key(
    client: TestClient, faces: dict[str, str]
) -> None:
    creds = provision(client)
    token = issue_token(client, creds)
    transaction_id = match(client, creds, token, faces["same_a"], faces["same_b"]).json()[
        "transaction_id"
    ]
    fields = {"bundle_key": creds.bundle_key, "transaction_id": transaction_id}
    no_key = client.post(INQUIRE, json=fields, headers=bearer(token))
    assert no_key.status_code == 403
    assert no_key.json()["error_code"] == CATALOGUE["public_key_missing"].code

    register_key(client, creds, client_private_key())
    assert client.post(INQUIRE, json=fields).status_code == 403  # no bearer token
    assert client.post(INQUIRE, json=fields, headers=bearer("forged")).status_code == 403
    both = client.post(INQUIRE, json={**fields, "access_token": token}, headers=bearer(token))
    assert both.status_code == 400
    assert both.json()["error_code"] == CATALOGUE["inquiry_conflicting_fields"].code
    neither = client.post(INQUIRE, json={"bundle_key": creds.bundle_key}, headers=bearer(token))
    assert neither.status_code == 400
    assert neither.json()["field"] == "transaction_id"


def test_bundle_without_image_storage(client: TestClient, faces: dict[str, str]) -> None:
    creds = provision(client)
    register_key(client, creds, client_private_key())
    with session_scope(_factory(client)) as session:
        session.execute(
            update(Bundle).where(Bundle.id == creds.bundle_id).values(store_images=False)
        )
    token = issue_token(client, creds)
    transaction_id = match(client, creds, token, faces["same_a"], faces["same_b"]).json()[
        "transaction_id"
    ]
    assert (
        sql_scalar(
            client,
            "SELECT COUNT(*) FROM transaction_images WHERE transaction_id = :t",
            t=transaction_id,
        )
        == 0
    )
    fields = {"bundle_key": creds.bundle_key, "transaction_id": transaction_id}
    response = client.post(FETCH, json=fields, headers=bearer(token))
    assert response.status_code == 404
    assert response.json()["error_code"] == CATALOGUE["images_not_stored"].code
    inquiry = client.post(INQUIRE, json=fields, headers=bearer(token))
    (record,) = client_decrypt(inquiry.json(), client_private_key())["transactions"]
    assert record["images_stored"] == []


def test_engine_gets_the_bytes_decoded_once(
    client: TestClient, faces: dict[str, str], matcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each image's base64 is decoded once, at the edge: the engine gets the bytes,
    whether the bundle stores images or not."""
    seen: list[tuple[object, object]] = []
    real_match = matcher.match

    def spy(first: object, second: object) -> Any:
        seen.append((first, second))
        return real_match(first, second)

    monkeypatch.setattr(matcher, "match", spy)
    creds = provision(client)
    token = issue_token(client, creds)
    assert match(client, creds, token, faces["same_a"], faces["same_b"]).status_code == 200
    with session_scope(_factory(client)) as session:
        session.execute(
            update(Bundle).where(Bundle.id == creds.bundle_id).values(store_images=False)
        )
    assert match(client, creds, token, faces["same_a"], faces["same_b"]).status_code == 200

    stored_call, unstored_call = seen
    assert stored_call == (base64.b64decode(faces["same_a"]), base64.b64decode(faces["same_b"]))
    assert unstored_call == stored_call


# --- key rotation and retention --------------------------------------------------------------


def test_key_rotation_keeps_old_images_readable(
    client: TestClient, org: Credentials, faces: dict[str, str]
) -> None:
    app = client.app
    old_spec = new_key_spec("before-rotation")
    with using_vault(app, vault_from_specs([old_spec])):
        token = issue_token(client, org)
        secret = hmac_secret(client, org)
        transaction_id = match(client, org, token, faces["same_a"], faces["same_b"]).json()[
            "transaction_id"
        ]
    with using_vault(app, vault_from_specs([new_key_spec("after-rotation"), old_spec])):
        fetched = client.post(
            FETCH,
            json={"bundle_key": org.bundle_key, "transaction_id": transaction_id},
            headers=bearer(token),
        )
        assert fetched.status_code == 200, fetched.text
        assert hmac_ok(fetched, secret)  # the HMAC secret survived the rotation too
        images = client_decrypt(fetched.json(), client_private_key())
        assert base64.b64decode(images["first_img"]) == base64.b64decode(faces["same_a"])
        # New images go under the new key.
        newer = match(client, org, token, faces["same_a"], faces["same_c"]).json()["transaction_id"]
        assert (
            sql_scalar(
                client,
                "SELECT DISTINCT key_id FROM transaction_images WHERE transaction_id = :t",
                t=newer,
            )
            == "after-rotation"
        )


def test_purge_deletes_images_and_keeps_the_audit_record(
    client: TestClient, org: Credentials, faces: dict[str, str]
) -> None:
    token = issue_token(client, org)
    transaction_id = match(client, org, token, faces["same_a"], faces["same_b"]).json()[
        "transaction_id"
    ]
    with session_scope(_factory(client)) as session:
        session.execute(
            update(Transaction)
            .where(Transaction.id == transaction_id)
            .values(created_at=utcnow() - timedelta(days=31))
        )
    assert (
        sql_scalar(
            client,
            "SELECT COUNT(*) FROM transaction_images WHERE transaction_id = :t",
            t=transaction_id,
        )
        == 2
    )
    with session_scope(_factory(client)) as session:
        report = purge_expired(session)
    assert report.transactions >= 1
    assert report.images >= 2

    # Checked in the database itself: the encrypted bytes and the descriptor are gone.
    assert (
        sql_scalar(
            client,
            "SELECT COUNT(*) FROM transaction_images WHERE transaction_id = :t",
            t=transaction_id,
        )
        == 0
    )
    assert (
        sql_scalar(
            client, "SELECT reference_embedding FROM transactions WHERE id = :t", t=transaction_id
        )
        is None
    )
    assert (
        sql_scalar(client, "SELECT outcome FROM transactions WHERE id = :t", t=transaction_id)
        == "success"
    )

    fields = {"bundle_key": org.bundle_key, "transaction_id": transaction_id}
    inquiry = client.post(INQUIRE, json=fields, headers=bearer(token))
    assert inquiry.status_code == 200, inquiry.text
    (record,) = client_decrypt(inquiry.json(), client_private_key())["transactions"]
    assert record["outcome"] == "success"
    assert record["result"]["is_similar"] is True
    assert record["images_purged"] is True
    assert record["images_purged_at"] is not None
    assert record["images_stored"] == []
    fetched = client.post(FETCH, json=fields, headers=bearer(token))
    assert fetched.status_code == 410
    assert fetched.json()["error_code"] == CATALOGUE["images_purged"].code


# --- every catalogue entry of these endpoints, in both languages ---------------------------


def _stub_transaction(stub: TestClient, creds: Credentials, token: str) -> str:
    response = stub.post(
        MATCH,
        json={
            "first_img": script("ok"),
            "second_img": script("ok too"),
            "bundle_key": creds.bundle_key,
        },
        headers=bearer(token),
    )
    assert response.status_code == 200, response.text
    return response.json()["transaction_id"]


def _unreadable(stub: TestClient, creds: Credentials, token: str, lang: str) -> Response:
    transaction_id = _stub_transaction(stub, creds, token)
    app = stub.app
    # The key that sealed the images was dropped from the configuration too early.
    with using_vault(app, vault_from_specs([new_key_spec("unrelated")])):
        return stub.post(
            FETCH,
            json={"bundle_key": creds.bundle_key, "transaction_id": transaction_id, "lang": lang},
            headers=bearer(token),
        )


def _purged(stub: TestClient, creds: Credentials, token: str, lang: str) -> Response:
    transaction_id = _stub_transaction(stub, creds, token)
    with session_scope(_factory(stub)) as session:
        session.execute(
            update(Transaction)
            .where(Transaction.id == transaction_id)
            .values(created_at=utcnow() - timedelta(days=400))
        )
        purge_expired(session)
    return stub.post(
        FETCH,
        json={"bundle_key": creds.bundle_key, "transaction_id": transaction_id, "lang": lang},
        headers=bearer(token),
    )


def _not_stored(stub: TestClient, creds: Credentials, token: str, lang: str) -> Response:
    with session_scope(_factory(stub)) as session:
        session.execute(
            update(Bundle).where(Bundle.id == creds.bundle_id).values(store_images=False)
        )
    transaction_id = _stub_transaction(stub, creds, token)
    return stub.post(
        FETCH,
        json={"bundle_key": creds.bundle_key, "transaction_id": transaction_id, "lang": lang},
        headers=bearer(token),
    )


def _inquire(**fields: str) -> Any:
    def trigger(stub: TestClient, creds: Credentials, token: str, lang: str) -> Response:
        body = {"bundle_key": creds.bundle_key, "lang": lang}
        body.update({k: (token if v == "<token>" else v) for k, v in fields.items()})
        return stub.post(INQUIRE, json=body, headers=bearer(token))

    return trigger


def _without_key(stub: TestClient, creds: Credentials, token: str, lang: str) -> Response:
    with session_scope(_factory(stub)) as session:
        org = session.get(Organisation, creds.organisation_id)
        assert org is not None
        org.rsa_public_key_pem = None
    return _inquire(access_token="<token>")(stub, creds, token, lang)


ENTRY_TRIGGERS = {
    "transaction_not_found": _inquire(transaction_id="no-such-transaction"),
    "access_token_not_found": _inquire(access_token="no-such-token"),
    "inquiry_conflicting_fields": _inquire(transaction_id="x", access_token="<token>"),
    "images_not_stored": _not_stored,
    "images_purged": _purged,
    "public_key_missing": _without_key,
    "stored_data_unreadable": _unreadable,
}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", sorted(ENTRY_TRIGGERS))
def test_catalogue_entries_of_these_endpoints(
    stub_client: TestClient, name: str, lang: str
) -> None:
    creds = provision(stub_client)
    register_key(stub_client, creds, client_private_key())
    token = issue_token(stub_client, creds)
    entry = CATALOGUE[name]
    response = ENTRY_TRIGGERS[name](stub_client, creds, token, lang)
    assert response.status_code == entry.status, response.text
    body = response.json()
    assert body["error_code"] == entry.code
    assert body["message"] == entry.message(lang)
    assert "hmac" not in response.headers
    if entry.status == 500:
        assert body["transaction_id"]  # names what to investigate; no data, no key


def test_v11_and_slashless_face_match_responses_are_signed(stub_client: TestClient) -> None:
    creds = provision(stub_client)
    token = issue_token(stub_client, creds)
    fields = {"first_img": script("ok"), "second_img": script("ok"), "bundle_key": creds.bundle_key}
    responses = [
        stub_client.post("/api/v1.1/face/match/", json={"data": fields}, headers=bearer(token)),
        stub_client.post("/api/v1/face/match", json=fields, headers=bearer(token)),
    ]
    secret = hmac_secret(stub_client, creds)
    for response in responses:
        assert response.status_code == 200, response.text
        assert hmac_ok(response, secret)
