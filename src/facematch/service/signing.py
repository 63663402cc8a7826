"""Signed responses: the canonical JSON body and its ``hmac`` header.

The canonical form (RFC 8785) and the HMAC live in :mod:`facematch_protocol`,
shared with the SDK that verifies them; this module only renders responses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from facematch.protocol.canonical import (
    MAX_SAFE_INTEGER,
    CanonicalFormError,
    canonical_json,
    format_number,
)
from facematch.protocol.signing import HMAC_HEADER, hmac_hex, verify_hmac

__all__ = [
    "HMAC_HEADER",
    "MAX_SAFE_INTEGER",
    "CanonicalFormError",
    "CanonicalJSONResponse",
    "canonical_json",
    "format_number",
    "hmac_hex",
    "signed_json_response",
    "verify_hmac",
]


class CanonicalJSONResponse(Response):
    """A JSON response whose body is exactly the canonical form of its content."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return canonical_json(content)


def signed_json_response(
    content: Any,
    *,
    secret: str | bytes,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> CanonicalJSONResponse:
    """A canonical JSON response carrying the ``hmac`` header for ``secret``."""
    response = CanonicalJSONResponse(content, status_code=status_code, headers=headers)
    response.headers[HMAC_HEADER] = hmac_hex(bytes(response.body), secret)
    return response
