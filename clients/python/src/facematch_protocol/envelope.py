"""Envelope encryption of responses for one client organisation.

Transaction inquiry and fetch-images answer ``{"key": ..., "data": ...}``:

- a fresh random 256-bit AES key is drawn for every response;
- ``data`` = base64( nonce ‖ AES-256-GCM ciphertext ‖ 16-byte tag ) of the
  response JSON (UTF-8, canonical form of :mod:`facematch_protocol.canonical`),
  with a fresh 12-byte nonce and no associated data;
- ``key`` = base64( RSA-OAEP encryption of the 32 raw AES key bytes ) under the
  public key the organisation registered, OAEP with SHA-256 and MGF1-SHA-256,
  empty label.

Both fields use standard base64 with padding. :func:`decrypt_envelope` is the
whole client side, written with nothing but ``cryptography``; docs/transactions.md
shows the same code. The server (encrypting) and the SDK (decrypting) both import
this module, so the two sides cannot drift. Registered keys must be RSA of at least 4096 bits.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from facematch_protocol.canonical import canonical_json

MIN_RSA_BITS = 4096
"""Smallest accepted client RSA modulus; Valify asks clients for 4096-bit keys."""

MAX_RSA_BITS = 16384
"""Largest accepted modulus: bigger keys only make every response slower."""

AES_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


class ClientKeyError(ValueError):
    """A client public key is unusable: not PEM, not RSA, or the wrong size."""


class EnvelopeError(ValueError):
    """An envelope cannot be opened: malformed, tampered, or for another key."""


def _oaep() -> padding.OAEP:
    return padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
    )


def load_client_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    """Parse and validate a client's PEM public key (``-----BEGIN PUBLIC KEY-----``).

    Both SubjectPublicKeyInfo (what ``openssl rsa -pubout`` writes) and PKCS#1
    (``BEGIN RSA PUBLIC KEY``) are accepted.
    """
    data = pem.encode("utf-8") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ClientKeyError("not a PEM-encoded public key") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise ClientKeyError(f"expected an RSA public key, got {type(key).__name__}")
    if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
        raise ClientKeyError(
            f"RSA key is {key.key_size} bits; between {MIN_RSA_BITS} and {MAX_RSA_BITS} required"
        )
    return key


def normalized_public_pem(key: rsa.RSAPublicKey) -> str:
    """The key as SubjectPublicKeyInfo PEM, the form we store."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def public_key_fingerprint(key: rsa.RSAPublicKey) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, hex: lets both sides name the key.

    Same value as ``openssl pkey -pubin -in public.pem -outform DER | sha256sum``.
    """
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def encrypt_for_client(plaintext: bytes, public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """Encrypt ``plaintext`` under a fresh AES-256-GCM key wrapped for ``public_key``."""
    aes_key = AESGCM.generate_key(bit_length=8 * AES_KEY_BYTES)
    nonce = os.urandom(NONCE_BYTES)
    sealed = nonce + AESGCM(aes_key).encrypt(nonce, plaintext, None)
    wrapped = public_key.encrypt(aes_key, _oaep())
    return {
        "key": base64.b64encode(wrapped).decode("ascii"),
        "data": base64.b64encode(sealed).decode("ascii"),
    }


def encrypt_json_for_client(payload: Any, public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """Encrypt the canonical JSON of ``payload`` for the client."""
    return encrypt_for_client(canonical_json(payload), public_key)


def decrypt_envelope(envelope: Mapping[str, str], private_key: rsa.RSAPrivateKey) -> bytes:
    """The client side: open ``{"key", "data"}`` with the client's RSA private key."""
    try:
        wrapped = base64.b64decode(envelope["key"], validate=True)
        sealed = base64.b64decode(envelope["data"], validate=True)
    except (KeyError, TypeError, binascii.Error) as exc:
        raise EnvelopeError("envelope needs base64 'key' and 'data' fields") from exc
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise EnvelopeError("'data' is too short to hold a nonce and a tag")
    try:
        aes_key = private_key.decrypt(wrapped, _oaep())
    except ValueError as exc:
        raise EnvelopeError("the key was not encrypted for this private key") from exc
    if len(aes_key) != AES_KEY_BYTES:
        raise EnvelopeError("the unwrapped key is not an AES-256 key")
    try:
        return AESGCM(aes_key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], None)
    except InvalidTag as exc:
        raise EnvelopeError("'data' was altered or does not belong to this key") from exc


def decrypt_json_envelope(envelope: Mapping[str, str], private_key: rsa.RSAPrivateKey) -> Any:
    """:func:`decrypt_envelope`, then parse the JSON it holds."""
    return json.loads(decrypt_envelope(envelope, private_key).decode("utf-8"))
