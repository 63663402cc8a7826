"""``POST /api/o/token/``: OAuth 2.0 password and refresh-token grants (RFC 6749).

Client credentials come as form fields ``client_id`` / ``client_secret`` or in
an HTTP Basic ``Authorization`` header. Errors use the OAuth shape
``{"error", "error_description"}``; ``error_description`` follows an optional
``lang`` form field (``en`` default, ``ar``; anything else falls back to ``en``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from facematch.service.auth import SessionDep
from facematch.service.errors import DEFAULT_LANG, LANGS, ApiError, OAuthError
from facematch.service.schemas import OAuthErrorResponse, TokenResponse
from facematch.settings import Settings
from facematch.store import repository

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


def _grant(
    session: Session,
    form: dict[str, str],
    basic: tuple[str, str] | None,
    lang: str,
    settings: Settings,
) -> TokenResponse:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("oauth_invalid_request", lang=lang)
    if grant_type not in ("password", "refresh_token"):
        raise OAuthError("oauth_unsupported_grant_type", lang=lang)

    client_id, client_secret = basic or (form.get("client_id"), form.get("client_secret"))
    if not client_id or not client_secret:
        raise OAuthError("oauth_invalid_client", lang=lang)
    application = repository.authenticate_application(
        session, client_id=client_id, client_secret=client_secret
    )
    if application is None:
        raise OAuthError("oauth_invalid_client", lang=lang)

    if grant_type == "password":
        username, password = form.get("username"), form.get("password")
        if not username or password is None:
            raise OAuthError("oauth_invalid_request", lang=lang)
        user = repository.authenticate_user(session, username=username, password=password)
        if user is None or user.organisation_id != application.organisation_id:
            raise OAuthError("oauth_invalid_grant", lang=lang)
    else:
        refresh_token = form.get("refresh_token")
        if not refresh_token:
            raise OAuthError("oauth_invalid_request", lang=lang)
        old = repository.redeem_refresh_token(
            session, refresh_token=refresh_token, application=application
        )
        user = session.get(repository.User, old.user_id) if old is not None else None
        if user is None or not user.active:
            session.rollback()
            raise OAuthError("oauth_invalid_grant", lang=lang)

    issued = repository.issue_token(
        session,
        user=user,
        application=application,
        refresh_lifetime_s=settings.refresh_token_lifetime_s,
    )
    session.commit()
    return TokenResponse(
        access_token=issued.access_token,
        expires_in=issued.expires_in_s,
        scope=issued.row.scope,
        refresh_token=issued.refresh_token,
    )


async def token(request: Request, session: SessionDep) -> JSONResponse:
    """Exchange user credentials (or a refresh token) for an access token.

    The token allows the number of service calls ("trials") and lives for the
    time configured on the bundle of the OAuth application (3 calls, 600 s by
    default).
    """
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type not in FORM_MEDIA_TYPES:
        raise OAuthError("oauth_invalid_request")
    try:
        raw_form = await request.form()
    except ApiError:  # the body limit, raised while the form is read
        raise
    except Exception as exc:  # malformed multipart: the client's fault
        raise OAuthError("oauth_invalid_request") from exc
    form = {key: value for key, value in raw_form.items() if isinstance(value, str)}
    lang = form.get("lang", DEFAULT_LANG)
    lang = lang if lang in LANGS else DEFAULT_LANG
    settings: Settings = request.app.state.settings
    basic = _basic_credentials(request)
    # Password hashing is deliberately slow: keep it off the event loop.
    response = await run_in_threadpool(_grant, session, form, basic, lang, settings)
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
