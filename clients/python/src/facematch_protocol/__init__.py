"""The wire protocol of facematch, shared by the server and the Python SDK.

Only the standard library and ``cryptography``: no web framework, database or
face engine, so a client can install it alone (it ships in the
``facematch-client`` distribution; the server depends on that distribution).

- :mod:`facematch_protocol.canonical` — the canonical JSON form (RFC 8785) of signed bodies;
- :mod:`facematch_protocol.signing` — the ``hmac`` response header (HMAC-SHA512);
- :mod:`facematch_protocol.envelope` — the RSA-OAEP + AES-256-GCM envelope of inquiry
  and fetch-images answers.
"""

from facematch_protocol.canonical import (
    MAX_SAFE_INTEGER,
    CanonicalFormError,
    canonical_json,
    format_number,
)
from facematch_protocol.envelope import (
    ClientKeyError,
    EnvelopeError,
    decrypt_envelope,
    decrypt_json_envelope,
    encrypt_for_client,
    encrypt_json_for_client,
    load_client_public_key,
    public_key_fingerprint,
)
from facematch_protocol.signing import HMAC_HEADER, hmac_hex, verify_hmac

__all__ = [
    "HMAC_HEADER",
    "MAX_SAFE_INTEGER",
    "CanonicalFormError",
    "ClientKeyError",
    "EnvelopeError",
    "canonical_json",
    "decrypt_envelope",
    "decrypt_json_envelope",
    "encrypt_for_client",
    "encrypt_json_for_client",
    "format_number",
    "hmac_hex",
    "load_client_public_key",
    "public_key_fingerprint",
    "verify_hmac",
]
