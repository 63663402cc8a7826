"""The envelope of inquiry and fetch-images answers: :mod:`facematch_protocol.envelope` itself."""

from facematch_protocol.envelope import (
    AES_KEY_BYTES,
    MAX_RSA_BITS,
    MIN_RSA_BITS,
    NONCE_BYTES,
    TAG_BYTES,
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

__all__ = [
    "AES_KEY_BYTES",
    "MAX_RSA_BITS",
    "MIN_RSA_BITS",
    "NONCE_BYTES",
    "TAG_BYTES",
    "ClientKeyError",
    "EnvelopeError",
    "decrypt_envelope",
    "decrypt_json_envelope",
    "encrypt_for_client",
    "encrypt_json_for_client",
    "load_client_public_key",
    "normalized_public_pem",
    "public_key_fingerprint",
]
