"""Hashing of stored secrets and generation of new ones.

Two kinds of secret, two treatments:

* **Passwords** are chosen by people and may be weak, so they go through a slow,
  salted KDF (scrypt from the standard library) stored as one self-describing
  string ``scrypt$n$r$p$salt$hash``.
* **Generated secrets** (client secrets, bundle keys, access and refresh tokens)
  carry 192+ bits of randomness, so a plain SHA-256 digest is enough and lets the
  database find the row by an indexed lookup of the digest.

Every comparison of digests uses :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# scrypt cost: ~50 ms and 16 MiB per check on a laptop core; login is rare (tokens
# are reused for several calls), so this cost does not sit on the match path.
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32

BUNDLE_KEY_BYTES = 24
TOKEN_BYTES = 32
KEY_PREFIX_CHARS = 8


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password``, with its parameters, as one string."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=_SCRYPT_N,
        r=_SCRYPT_R,
        p=_SCRYPT_P,
        dklen=_KEY_BYTES,
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; False for any malformed hash."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(key)
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def digest_secret(secret: str) -> str:
    """SHA-256 hex digest of a generated (high-entropy) secret, for indexed lookup."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, stored_digest: str) -> bool:
    """Constant-time check of a presented secret against its stored digest."""
    return hmac.compare_digest(digest_secret(secret), stored_digest)


def new_token() -> str:
    """A fresh access or refresh token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_bundle_key() -> str:
    """A fresh bundle key: 48 hex characters (192 bits)."""
    return secrets.token_hex(BUNDLE_KEY_BYTES)


def new_client_id() -> str:
    """A fresh OAuth client id (public, but unguessable all the same)."""
    return secrets.token_urlsafe(24)


def new_client_secret() -> str:
    """A fresh OAuth client secret (384 bits)."""
    return secrets.token_urlsafe(48)


def key_prefix(secret: str) -> str:
    """The first characters of a secret, safe to display so people can tell keys apart."""
    return secret[:KEY_PREFIX_CHARS]
