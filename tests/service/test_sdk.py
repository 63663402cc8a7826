"""The Python SDK (clients/python) against the real app in-process, through its
replaceable transport: tokens, typed errors, retries, signatures, decryption."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import facematch.protocol
import facematch.protocol.envelope
import facematch_protocol
from facematch.service import signing
from facematch.service.errors import CATALOGUE
from facematch.store import repository
from facematch.store.db import session_scope
from facematch.testing.keys import client_private_key
from facematch_client import (
    ERRORS_BY_CODE,
    ApiError,
    Client,
    FaceError,
    NoFaceError,
    OAuthInvalidGrantError,
    QuotaExhaustedError,
    RetryPolicy,
    SignatureError,
    error_class,
)
from tests.service.support import Credentials, provision
from tests.service.test_transactions import hmac_secret, register_key

MATCH = "/api/v1/face/match/"


class Recorder(httpx.BaseTransport):
    """Passes requests to the app and remembers (path, bearer token, status) of each."""

    def __init__(self, inner: httpx.BaseTransport, *, inject: list[httpx.Response] | None = None):
        self.inner = inner
        self.inject = inject or []
        self.calls: list[tuple[str, str | None, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization")
        token = auth.removeprefix("Bearer ") if auth else None
        if self.inject and request.url.path == MATCH:
            response = self.inject.pop(0)
        else:
            response = self.inner.handle_request(request)
            response.read()
        self.calls.append((request.url.path, token, response.status_code))
        return response


def sdk(test_client: TestClient, creds: Credentials, **options: object) -> Client:
    return Client(
        "http://testserver",
        username=creds.username,
        password=creds.password,
        client_id=creds.client_id,
        client_secret=creds.client_secret,
        bundle_key=creds.bundle_key,
        transport=options.pop("transport", test_client._transport),  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def lfw_paths(lfw_root: Path) -> dict[str, Path]:
    from tests.conftest import lfw_image

    return {
        "same_a": lfw_image(lfw_root, "Aaron_Peirsol", 1),
        "same_b": lfw_image(lfw_root, "Aaron_Peirsol", 2),
        "other": lfw_image(lfw_root, "Tony_Blair", 6),
    }


def test_server_and_sdk_run_one_protocol_implementation() -> None:
    # The server's modules re-export the protocol package's objects: nothing to drift.
    assert signing.canonical_json is facematch_protocol.canonical_json
    assert signing.hmac_hex is facematch_protocol.hmac_hex
    envelope = facematch.protocol.envelope
    assert envelope.encrypt_json_for_client is facematch_protocol.encrypt_json_for_client
    assert envelope.decrypt_envelope is facematch_protocol.decrypt_envelope
    assert facematch.protocol.canonical_json is facematch_protocol.canonical_json
    assert set(facematch.protocol.__all__) == set(facematch_protocol.__all__)


@pytest.mark.parametrize("entry", list(CATALOGUE.values()), ids=lambda e: e.name)
def test_every_catalogue_entry_is_a_typed_exception(entry) -> None:  # type: ignore[no-untyped-def]
    cls = error_class(entry.code, entry.status)
    assert issubclass(cls, ApiError)
    assert cls.code == entry.code, f"the SDK has no class for {entry.name} ({entry.code})"
    assert ERRORS_BY_CODE[entry.code] is cls


@pytest.mark.lfw
def test_seed_flow_match_inquire_fetch_with_signatures(
    client: TestClient, lfw_paths: dict[str, Path]
) -> None:
    creds = provision(client, token_trials=10)
    register_key(client, creds, client_private_key())
    secret = hmac_secret(client, creds)
    with sdk(client, creds, hmac_secret=secret, private_key=client_private_key()) as api:
        same = api.match(lfw_paths["same_a"], lfw_paths["same_b"].read_bytes())
        with lfw_paths["other"].open("rb") as other_file:
            different = api.match(str(lfw_paths["same_a"]), other_file)
        again = api.match_reference(Image.open(lfw_paths["same_a"]), same.transaction_id)
        assert (same.is_similar, different.is_similar, again.is_similar) == (True, False, True)
        assert 0 < different.confidence < same.confidence < 1
        assert [same.trials_remaining, different.trials_remaining] == [9, 8]

        (record,) = api.inquire(transaction_id=same.transaction_id)
        assert record["transaction_id"] == same.transaction_id
        assert record["result"] == {"is_similar": True, "confidence": same.confidence}
        token = api.token
        assert token is not None
        by_token = api.inquire(access_token=token.access_token)
        assert [r["transaction_id"] for r in by_token] == [
            same.transaction_id,
            different.transaction_id,
            again.transaction_id,
        ]
        images = api.fetch_images(same.transaction_id)
        assert images.first_img == lfw_paths["same_a"].read_bytes()
        assert images.second_img == lfw_paths["same_b"].read_bytes()
        assert api.tokens_obtained == 1

    # The same answers under another bundle's secret do not verify.
    with (
        sdk(client, creds, hmac_secret="not-the-bundle-secret") as wrong,
        pytest.raises(SignatureError),
    ):
        wrong.match(lfw_paths["same_a"], lfw_paths["same_b"])


def test_used_up_token_is_replaced_without_a_wasted_call(stub_client: TestClient) -> None:
    creds = provision(stub_client, token_trials=2)
    recorder = Recorder(stub_client._transport)  # type: ignore[arg-type]
    with sdk(stub_client, creds, transport=recorder) as api:
        results = [api.match(b"ok", b"ok") for _ in range(5)]
    assert [r.trials_remaining for r in results] == [1, 0, 1, 0, 1]
    assert api.tokens_obtained == 3
    match_calls = [call for call in recorder.calls if call[0] == MATCH]
    assert [status for _, _, status in match_calls] == [200] * 5  # never a 403
    tokens = [token for _, token, _ in match_calls]
    assert len(set(tokens)) == 3
    assert tokens[0] == tokens[1] != tokens[2]


def test_token_revoked_on_the_server_is_replaced_once(stub_client: TestClient) -> None:
    creds = provision(stub_client, token_trials=5)
    recorder = Recorder(stub_client._transport)  # type: ignore[arg-type]
    with sdk(stub_client, creds, transport=recorder) as api:
        api.match(b"ok", b"ok")
        with session_scope(stub_client.app.state.session_factory) as session:  # type: ignore[attr-defined]
            repository.revoke_tokens(session, organisation_id=creds.organisation_id)
        result = api.match(b"ok", b"ok")
    assert result.trials_remaining == 4
    assert [s for p, _, s in recorder.calls if p == MATCH] == [200, 403, 200]


def test_refresh_token_is_used_before_the_password(stub_client: TestClient) -> None:
    creds = provision(stub_client, token_trials=1)
    recorder = Recorder(stub_client._transport)  # type: ignore[arg-type]
    with sdk(stub_client, creds, transport=recorder) as api:
        api.match(b"ok", b"ok")
        api.match(b"ok", b"ok")
    token_calls = [call for call in recorder.calls if call[0] == "/api/o/token/"]
    assert len(token_calls) == 2
    assert api.tokens_obtained == 2


@pytest.mark.parametrize(
    ("lang", "message"),
    [("en", CATALOGUE["no_face"].en), ("ar", CATALOGUE["no_face"].ar)],
)
def test_catalogue_error_is_typed_and_in_the_language_asked(
    stub_client: TestClient, lang: str, message: str
) -> None:
    creds = provision(stub_client)
    with sdk(stub_client, creds, lang=lang) as api, pytest.raises(NoFaceError) as caught:
        api.match(b"raise:NoFaceError", b"ok")
    error = caught.value
    assert isinstance(error, FaceError)
    assert (error.status, error.error_code, error.message) == (422, 2101, message)
    assert error.field == "first_img"
    assert error.transaction_id is not None
    assert error.trials_remaining == 2


def test_wrong_password_is_an_oauth_error(stub_client: TestClient) -> None:
    creds = provision(stub_client)
    with (
        Client(
            "http://testserver",
            username=creds.username,
            password="wrong",
            client_id=creds.client_id,
            client_secret=creds.client_secret,
            bundle_key=creds.bundle_key,
            transport=stub_client._transport,  # type: ignore[arg-type]
        ) as api,
        pytest.raises(OAuthInvalidGrantError) as caught,
    ):
        api.match(b"ok", b"ok")
    assert caught.value.status == 400


def _busy(retry_after: str) -> httpx.Response:
    entry = CATALOGUE["overloaded"]
    return httpx.Response(
        429,
        json={"message": entry.en, "error_code": entry.code},
        headers={"Retry-After": retry_after},
    )


def test_busy_server_is_retried_after_retry_after(stub_client: TestClient) -> None:
    creds = provision(stub_client)
    waits: list[float] = []
    recorder = Recorder(
        stub_client._transport,  # type: ignore[arg-type]
        inject=[_busy("2"), _busy("1")],
    )
    with sdk(stub_client, creds, transport=recorder, sleep=waits.append) as api:
        result = api.match(b"ok", b"ok")
    assert waits == [2.0, 1.0]
    assert result.is_similar is True


def test_retries_are_bounded(stub_client: TestClient) -> None:
    creds = provision(stub_client)
    waits: list[float] = []
    recorder = Recorder(
        stub_client._transport,  # type: ignore[arg-type]
        inject=[_busy("1")] * 3,
    )
    retry = RetryPolicy(max_retries=2)
    with (
        sdk(stub_client, creds, transport=recorder, sleep=waits.append, retry=retry) as api,
        pytest.raises(ApiError) as caught,
    ):
        api.match(b"ok", b"ok")
    assert waits == [1.0, 1.0]
    assert (caught.value.status, caught.value.retry_after) == (429, 1.0)


def test_quota_exhausted_is_not_retried(stub_client: TestClient) -> None:
    creds = provision(stub_client, quota=1)
    waits: list[float] = []
    with sdk(stub_client, creds, sleep=waits.append) as api:
        api.match(b"ok", b"ok")
        with pytest.raises(QuotaExhaustedError) as caught:
            api.match(b"ok", b"ok")
    assert caught.value.status == 429
    assert waits == []


def test_image_inputs(stub_client: TestClient, tmp_path: Path) -> None:
    creds = provision(stub_client, token_trials=10)
    path = tmp_path / "first.bin"
    path.write_bytes(b"ok")
    image = Image.new("RGB", (8, 8))
    with sdk(stub_client, creds) as api:
        for first in (path, str(path), b"ok", bytearray(b"ok"), io.BytesIO(b"ok"), image):
            assert api.match(first, b"ok").is_similar is True
        with pytest.raises(TypeError, match="binary mode"):
            api.match(io.StringIO("text"), b"ok")
        with pytest.raises(TypeError, match="cannot send int"):
            api.match(3, b"ok")  # type: ignore[arg-type]


def test_retry_policy_rejects_nonsense_headers() -> None:
    # A Retry-After that is not delta-seconds falls back to the backoff.
    from facematch_client._core import retry_delay

    response = httpx.Response(503, headers={"Retry-After": "soon"}, json={"error_code": 1303})
    assert retry_delay(response, 0, RetryPolicy(backoff_s=0.25)) == 0.25
    huge = httpx.Response(503, headers={"Retry-After": "3600"}, json={"error_code": 1303})
    assert retry_delay(huge, 0, RetryPolicy(max_wait_s=30)) is None


def test_async_client_in_process_rotates_tokens_under_concurrency(
    database_url: str, tmp_path: Path
) -> None:
    """AsyncClient on httpx.ASGITransport: the real app, its lifespan, one event loop."""
    from facematch.service.app import create_app
    from facematch_client import AsyncClient
    from tests.service.conftest import service_settings
    from tests.service.support import StubMatcher

    stub = StubMatcher()
    app = create_app(service_settings(database_url, tmp_path), matcher=stub)  # type: ignore[arg-type]

    async def scenario() -> tuple[list[int], int]:
        async with app.router.lifespan_context(app):
            creds = provision(TestClient(app), token_trials=2)
            async with AsyncClient(
                "http://testserver",
                username=creds.username,
                password=creds.password,
                client_id=creds.client_id,
                client_secret=creds.client_secret,
                bundle_key=creds.bundle_key,
                transport=httpx.ASGITransport(app=app),
            ) as api:
                first = await api.match(b"ok", b"ok")  # learns the token's trials
                rest = await asyncio.gather(*(api.match(b"ok", b"ok") for _ in range(4)))
                return [r.trials_remaining for r in (first, *rest)], api.tokens_obtained

    trials, tokens = asyncio.run(scenario())
    assert sorted(trials) == [0, 0, 1, 1, 1]
    assert tokens == 3


def test_private_key_from_an_object_pem_text_bytes_or_file(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from facematch_client._client import load_private_key

    key = client_private_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = tmp_path / "private.pem"
    path.write_bytes(pem)
    for given in (key, pem, pem.decode(), path, str(path)):
        loaded = load_private_key(given)
        assert loaded is not None
        assert loaded.private_numbers() == key.private_numbers()
