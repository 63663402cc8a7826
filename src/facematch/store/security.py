"""Hashing of stored secrets and generation of new ones.

Two kinds of secret, two treatments:

* **Passwords** are chosen by people and may be weak, so they go through a slow,
  salted, memory-hard KDF (scrypt from the standard library) stored as one
  self-describing string ``scrypt$n$r$p$salt$hash``. A hash made with older
  parameters still verifies, and :func:`needs_rehash` tells the login to replace it.
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
from dataclasses import dataclass


@dataclass(frozen=True)
class ScryptCost:
    """scrypt's cost parameters: ``n`` (CPU/memory), ``r`` (block size), ``p`` (lanes)."""

    n: int
    r: int
    p: int

    @property
    def memory_bytes(self) -> int:
        # OpenSSL's working set: V (128·r·(n+2)) plus B (128·r·p).
        return 128 * self.r * (self.n + 2 + self.p)


# OWASP Password Storage Cheat Sheet (scrypt when Argon2id is not at hand;
# cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html):
# N=2^17, r=8, p=1 — 128 MiB per check; its CPU time per login is in
# docs/performance.md ("Password checks"). Logins are rare (a token serves
# several calls), and the token endpoint bounds how many checks run at once
# (FACEMATCH_PASSWORD_HASH_CONCURRENCY).
PASSWORD_COST = ScryptCost(n=2**17, r=8, p=1)
# A stored hash asking for more memory than this is refused, not computed.
MAX_SCRYPT_MEMORY_BYTES = 256 * 1024 * 1024
_SALT_BYTES = 16
_KEY_BYTES = 32

# Verified when a username is unknown, so that a wrong username costs what a wrong
# password costs (no user enumeration by timing). Made once, offline, with
# PASSWORD_COST (a test checks that they agree) so that importing this module
# runs no scrypt; its password is "facematch-timing-equaliser".
# (The hash of a published dummy, not a credential.)
DUMMY_PASSWORD_HASH = (
    "scrypt$131072$8$1$SnMTxf8cr6EmoHFdtfAuVg$j9gw6yb77_71yc26gvF49T23jBduZUZbFQ-7UL6-Myo"  # noqa: S105
)

BUNDLE_KEY_BYTES = 24
TOKEN_BYTES = 32
KEY_PREFIX_CHARS = 8


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, cost: ScryptCost, dklen: int) -> bytes:
    if cost.memory_bytes > MAX_SCRYPT_MEMORY_BYTES:
        raise ValueError(f"scrypt cost {cost} needs more than {MAX_SCRYPT_MEMORY_BYTES} bytes")
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=cost.n,
        r=cost.r,
        p=cost.p,
        dklen=dklen,
        maxmem=cost.memory_bytes + 1024 * 1024,
    )


def _parse(stored: str) -> tuple[ScryptCost, bytes, bytes]:
    """(cost, salt, key) of a stored hash; ValueError when it is not one of ours."""
    scheme, n, r, p, salt, key = stored.split("$")
    if scheme != "scrypt":
        raise ValueError(f"unknown password hash scheme {scheme!r}")
    return ScryptCost(n=int(n), r=int(r), p=int(p)), _unb64(salt), _unb64(key)


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password`` at :data:`PASSWORD_COST`, as one string."""
    cost = PASSWORD_COST
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, cost, _KEY_BYTES)
    return f"scrypt${cost.n}${cost.r}${cost.p}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (at the cost ``stored`` names); False for
    any malformed hash or one that asks for more than :data:`MAX_SCRYPT_MEMORY_BYTES`."""
    try:
        cost, salt, expected = _parse(stored)
        actual = _scrypt(password, salt, cost, len(expected))
    except (ValueError, TypeError, OverflowError):
        return False
    return hmac.compare_digest(actual, expected)


def verify_dummy_password(password: str) -> None:
    """Spend what :func:`verify_password` spends on a real hash, for an unknown user."""
    verify_password(password, DUMMY_PASSWORD_HASH)


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with other parameters than today's: the login that
    proves the password replaces it (transparent upgrade)."""
    try:
        cost, salt, key = _parse(stored)
    except ValueError:
        return True
    return cost != PASSWORD_COST or len(salt) != _SALT_BYTES or len(key) != _KEY_BYTES


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
