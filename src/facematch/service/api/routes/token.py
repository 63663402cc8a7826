"""``POST /api/o/token/``: OAuth 2.0 password and refresh-token grants (RFC 6749).

Client credentials come as form fields ``client_id`` / ``client_secret`` or in
an HTTP Basic ``Authorization`` header. Errors use the OAuth shape
``{"error", "error_description"}``; ``error_description`` follows an optional
``lang`` form field (``en`` default, ``ar``; anything else falls back to ``en``).

Guessing is throttled before any password is checked: a client address, or a
username, with too many recent failures gets 429 ``slow_down`` with
``Retry-After`` (:mod:`facematch.service.runtime.throttle`). The decision depends only on
what was sent and on earlier failures, never on whether the username exists,
and an unknown username costs one scrypt check like a wrong password.
"""

from __future__ import annotations

import base64
import binascii
from functools import partial
from typing import Any
from urllib.parse import unquote_plus

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from facematch.service.api.deps import ServicesDep, TokenGuardDep
from facematch.service.api.schemas import OAuthErrorResponse, TokenResponse
from facematch.service.errors import (
    DEFAULT_LANG,
    LANGS,
    BodyTooLarge,
    OAuthInvalidRequest,
    OAuthRefusal,
    OAuthSlowDown,
)

router = APIRouter(tags=["authentication"])

FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_FORM_FIELDS = {
    "grant_type": "'password' or 'refresh_token'.",
    "username": "password grant: the user's name.",
    "password": "password grant: the user's password.",
    "refresh_token": "refresh_token grant: the refresh token of an earlier response.",
    "client_id": "The OAuth application's client id (or use HTTP Basic).",
    "client_secret": "The OAuth application's client secret (or use HTTP Basic).",
    "lang": "Language of error descriptions: 'en' (default) or 'ar'.",
}
_OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        name: {"type": "string", "description": text}
                        for name, text in _FORM_FIELDS.items()
                    },
                }
            }
        },
    }
}
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": OAuthErrorResponse,
        "description": "invalid_request, invalid_grant or unsupported_grant_type",
    },
    401: {"model": OAuthErrorResponse, "description": "invalid_client"},
    429: {
        "model": OAuthErrorResponse,
        "description": "slow_down: too many failed attempts; see Retry-After",
    },
}


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    value = request.headers.get("authorization", "")
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


async def token(request: Request, services: ServicesDep, guard: TokenGuardDep) -> JSONResponse:
    """Exchange user credentials (or a refresh token) for an access token.

    The token allows the number of service calls ("trials") and lives for the
    time configured on the bundle of the OAuth application (3 calls, 600 s by
    default).
    """
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type not in FORM_MEDIA_TYPES:
        raise OAuthInvalidRequest()
    try:
        raw_form = await request.form()
    except BodyTooLarge:  # the body limit, raised while the form is read
        raise
    except Exception as exc:  # malformed multipart: the client's fault
        raise OAuthInvalidRequest() from exc
    form = {key: value for key, value in raw_form.items() if isinstance(value, str)}
    lang = form.get("lang", DEFAULT_LANG)
    request.state.lang = lang if lang in LANGS else DEFAULT_LANG
    client = request.client.host if request.client else "unknown"
    username = form.get("username") if form.get("grant_type") == "password" else None
    wait_s = guard.retry_after_s(client=client, username=username)
    if wait_s is not None:
        raise OAuthSlowDown(retry_after_s=wait_s)
    # Password hashing is deliberately slow: off the event loop, a few at a time.
    try:
        issued = await anyio.to_thread.run_sync(
            partial(services.tokens.grant, form, client=_basic_credentials(request)),
            limiter=guard.password_checks,
        )
    except OAuthRefusal as exc:
        guard.record_failure(exc, client=client, username=username)
        raise
    response = TokenResponse(
        access_token=issued.access_token,
        expires_in=issued.expires_in_s,
        scope=issued.scope,
        refresh_token=issued.refresh_token,
    )
    return JSONResponse(response.model_dump(), headers=NO_STORE)


for path, visible in (("/api/o/token/", True), ("/api/o/token", False)):
    router.add_api_route(
        path,
        token,
        methods=["POST"],
        response_model=TokenResponse,
        responses=_ERROR_RESPONSES,
        openapi_extra=_OPENAPI_BODY,
        include_in_schema=visible,
        summary="Get an access token",
        name="token" if visible else "token_no_slash",
    )
