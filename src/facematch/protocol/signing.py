"""The ``hmac`` response header: :mod:`facematch_protocol.signing` itself."""

from facematch_protocol.signing import HMAC_HEADER, HMAC_HEX_CHARS, hmac_hex, verify_hmac

__all__ = ["HMAC_HEADER", "HMAC_HEX_CHARS", "hmac_hex", "verify_hmac"]
