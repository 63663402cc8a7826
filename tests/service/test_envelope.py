"""Envelope encryption for clients, opened with nothing but ``cryptography``."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from facematch.protocol.envelope import (
    ClientKeyError,
    EnvelopeError,
    decrypt_envelope,
    decrypt_json_envelope,
    encrypt_for_client,
    encrypt_json_for_client,
    load_client_public_key,
    normalized_public_pem,
    public_key_fingerprint,
)
from facematch.testing.keys import client_private_key, other_client_private_key, public_pem


def client_side_decrypt(envelope: dict[str, str], private_key: rsa.RSAPrivateKey) -> bytes:
    """The scheme as docs/transactions.md states it, written out independently."""
    aes_key = private_key.decrypt(
        base64.b64decode(envelope["key"]),
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    blob = base64.b64decode(envelope["data"])
    return AESGCM(aes_key).decrypt(blob[:12], blob[12:], None)


def test_round_trip_with_a_4096_bit_key() -> None:
    private_key = client_private_key()
    public_key = load_client_public_key(public_pem(private_key))
    payload = {"transaction_id": "tx1", "images": ["AAEC"], "score": 0.5}
    envelope = encrypt_json_for_client(payload, public_key)
    assert set(envelope) == {"key", "data"}
    # 4096-bit RSA → 512-byte wrapped key.
    assert len(base64.b64decode(envelope["key"])) == 512
    assert json.loads(client_side_decrypt(envelope, private_key)) == payload
    assert decrypt_json_envelope(envelope, private_key) == payload


def test_every_response_uses_a_fresh_key_and_nonce() -> None:
    public_key = client_private_key().public_key()
    first = encrypt_for_client(b"same bytes", public_key)
    second = encrypt_for_client(b"same bytes", public_key)
    assert first["data"] != second["data"]
    assert first["key"] != second["key"]
    private_key = client_private_key()
    key_one = private_key.decrypt(
        base64.b64decode(first["key"]),
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    key_two = private_key.decrypt(
        base64.b64decode(second["key"]),
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    assert len(key_one) == 32
    assert key_one != key_two


def test_other_private_key_cannot_open() -> None:
    envelope = encrypt_for_client(b"secret", client_private_key().public_key())
    with pytest.raises(EnvelopeError):
        decrypt_envelope(envelope, other_client_private_key())


def test_tampered_data_is_detected() -> None:
    envelope = encrypt_for_client(b"secret payload", client_private_key().public_key())
    blob = bytearray(base64.b64decode(envelope["data"]))
    blob[-1] ^= 1
    tampered = {"key": envelope["key"], "data": base64.b64encode(bytes(blob)).decode()}
    with pytest.raises(EnvelopeError):
        decrypt_envelope(tampered, client_private_key())
    with pytest.raises(EnvelopeError):
        decrypt_envelope({"key": envelope["key"]}, client_private_key())


def test_key_validation_refuses_small_rsa_and_non_rsa_keys() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(ClientKeyError, match="2048 bits"):
        load_client_public_key(public_pem(small))
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ClientKeyError, match="RSA"):
        load_client_public_key(ec_pem)
    with pytest.raises(ClientKeyError, match="PEM"):
        load_client_public_key("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")


def test_pkcs1_pem_is_accepted_and_normalized() -> None:
    public_key = client_private_key().public_key()
    pkcs1 = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    loaded = load_client_public_key(pkcs1)
    assert normalized_public_pem(loaded) == public_pem(client_private_key())
    assert public_key_fingerprint(loaded) == public_key_fingerprint(public_key)
    assert len(public_key_fingerprint(loaded)) == 64


def test_documented_client_snippet_decrypts() -> None:
    """Runs the Python snippet from docs/transactions.md against a real envelope."""
    from tests.service.test_signing import DOCS, _doc_block

    snippet = _doc_block(DOCS.read_text(encoding="utf-8"), "client-decrypt")
    namespace: dict[str, object] = {}
    exec(compile(snippet, "docs/transactions.md", "exec"), namespace)
    private_pem = client_private_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    payload = {"transaction_id": "tx1", "result": {"is_similar": True}}
    envelope = encrypt_json_for_client(payload, client_private_key().public_key())
    decrypt = namespace["decrypt_response"]
    assert callable(decrypt)
    assert decrypt(envelope, private_pem) == payload
