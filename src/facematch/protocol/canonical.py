"""The canonical JSON form of signed bodies: :mod:`facematch_protocol.canonical` itself."""

from facematch_protocol.canonical import (
    MAX_SAFE_INTEGER,
    CanonicalFormError,
    canonical_json,
    format_number,
)

__all__ = ["MAX_SAFE_INTEGER", "CanonicalFormError", "canonical_json", "format_number"]
