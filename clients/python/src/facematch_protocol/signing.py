"""The ``hmac`` header of signed responses: HMAC-SHA512 of the exact body bytes.

The server signs the canonical form (:mod:`facematch_protocol.canonical`) it
sends, so a client verifies the raw bytes it received; no JSON library needed.
"""

from __future__ import annotations

import hashlib
import hmac

HMAC_HEADER = "hmac"
"""Name of the response header that carries the signature."""

HMAC_HEX_CHARS = 128
"""Length of a lowercase hex HMAC-SHA512."""


def _key_bytes(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def hmac_hex(body: bytes, secret: str | bytes) -> str:
    """Lowercase hex HMAC-SHA512 of ``body`` keyed with ``secret`` (str → UTF-8)."""
    return hmac.new(_key_bytes(secret), body, hashlib.sha512).hexdigest()


def verify_hmac(body: bytes, secret: str | bytes, signature: str) -> bool:
    """True when ``signature`` is the HMAC of ``body``; constant-time comparison."""
    expected = hmac_hex(body, secret)
    return hmac.compare_digest(expected, signature.strip().lower())
