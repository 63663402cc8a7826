"""Request dependencies, as ``Annotated`` aliases routes declare by type.

Order of checks for a service call (each raises a catalogue :class:`ApiError`):

1. :data:`ServiceBodyDep` — JSON media type (415); a body that may be big
   (over :data:`PEEK_BODY_BYTES` declared, or chunked) is read only after the
   bearer token is found live from the headers alone (403, in English or the
   ``Accept-Language``, connection closed): an anonymous client cannot make
   the server buffer or parse megabytes. Then a parsable JSON object (400,
   parsed off the event loop when big) and a valid ``lang`` (400). Nothing is
   consumed yet: these requests cost no trial.
2. :data:`CurrentToken` — bearer token from ``Authorization`` (or the
   ``Authentication`` header Valify's docs name): unknown/revoked, expired or
   used up → 403. Otherwise one trial is consumed, atomically in SQL, and
   committed at once, so every later failure of the call has cost a trial.
3. :data:`BundleDep` — ``bundle_key`` present (400) and the key of the token's
   own bundle, the bundle of the OAuth application that issued it, still active
   (401). Another bundle's key, even of the same organisation, gets the same
   answer as an unknown key: a business unit's token never spends another
   unit's quota, and the answer does not tell whether the key exists.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from facematch.service.body_limit import declared_length
from facematch.service.errors import DEFAULT_LANG, LANGS, ApiError
from facematch.service.json_body import InvalidJsonError, parse_json_object
from facematch.store import repository
from facematch.store.models import AccessToken, Bundle, utcnow

JSON_MEDIA_TYPES = ("application/json",)
AUTH_HEADERS = ("authorization", "authentication")
# Bodies up to this size are read before authentication, so that even a refusal
# speaks the body's ``lang``; larger ones only once the token is known live.
PEEK_BODY_BYTES = 64 * 1024
# Parsing a multi-megabyte JSON body takes tens of milliseconds: off the event loop.
OFF_LOOP_PARSE_BYTES = 256 * 1024


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; routes commit explicitly, leftovers roll back."""
    session: Session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


@dataclass(frozen=True)
class ServiceBody:
    """A parsed JSON request body and its language."""

    data: dict[str, Any]
    lang: str


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in JSON_MEDIA_TYPES or media_type.endswith("+json")


def _lang_of(data: dict[str, Any]) -> str:
    # v1.1 wraps the fields in "data"; accept lang at either level.
    lang = data.get("lang")
    if lang is None and isinstance(data.get("data"), dict):
        lang = data["data"].get("lang")
    if lang is None:
        return DEFAULT_LANG
    if not isinstance(lang, str) or lang.strip().lower() not in LANGS:
        raise ApiError("invalid_lang", field="lang")
    return lang.strip().lower()


def header_lang(request: Request) -> str:
    """The language of an answer given before the body (and its ``lang``) is read."""
    accept = request.headers.get("accept-language", "")
    return "ar" if accept.strip().lower().startswith("ar") else DEFAULT_LANG


def _require_live_token(request: Request, session: Session) -> None:
    """Refuse from the headers a request whose token is missing, unknown or dead.

    The body is not read, so the connection is closed after the answer instead
    of draining what the client still sends.
    """
    lang = header_lang(request)
    close = {"Connection": "close"}
    try:
        token = presented_token(request, session, lang=lang)
    except ApiError as exc:
        exc.headers = {**(exc.headers or {}), **close}
        raise
    if token.expires_at <= utcnow():
        raise ApiError("token_expired", lang=lang, headers=close)


async def service_body(request: Request, session: SessionDep) -> ServiceBody:
    if not _is_json(request.headers.get("content-type")):
        raise ApiError("unsupported_media_type")
    declared = declared_length(request.scope)
    if declared is None or declared > PEEK_BODY_BYTES:
        await run_in_threadpool(_require_live_token, request, session)
    raw = await request.body()
    try:
        if len(raw) > OFF_LOOP_PARSE_BYTES:
            data = await run_in_threadpool(parse_json_object, raw)
        else:
            data = parse_json_object(raw)
    except InvalidJsonError as exc:
        raise ApiError("invalid_json") from exc
    return ServiceBody(data=data, lang=_lang_of(data))


ServiceBodyDep = Annotated[ServiceBody, Depends(service_body)]


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer …`` (or ``Authentication: …``)."""
    for header in AUTH_HEADERS:
        value = request.headers.get(header)
        if not value:
            continue
        scheme, _, credentials = value.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
        # Valify's docs show the header without a scheme in places: a bare token.
        if not credentials and header == "authentication":
            return scheme
    return None


@dataclass(frozen=True)
class AuthContext:
    """The authenticated token after this call's trial was taken."""

    token: AccessToken
    trials_remaining: int
    lang: str


def presented_token(request: Request, session: Session, *, lang: str) -> AccessToken:
    """The request's access token; 403 when it is missing, unknown or revoked."""
    presented = bearer_token(request)
    if presented is None:
        raise ApiError("token_missing", lang=lang)
    # Found once per request: a big body's header check already looked it up.
    known: tuple[str, AccessToken] | None = getattr(request.state, "presented_token", None)
    if known is not None and known[0] == presented:
        return known[1]
    token = repository.find_token(session, access_token=presented)
    if token is None or token.revoked_at is not None:
        raise ApiError("token_invalid", lang=lang)
    request.state.presented_token = (presented, token)
    return token


def current_token(request: Request, session: SessionDep, body: ServiceBodyDep) -> AuthContext:
    token = presented_token(request, session, lang=body.lang)
    now = utcnow()
    remaining = repository.consume_trial(session, token_id=token.id, now=now)
    session.commit()
    if remaining is None:
        session.refresh(token)
        if token.revoked_at is not None:
            raise ApiError("token_invalid", lang=body.lang)
        if token.expires_at <= now:
            raise ApiError("token_expired", lang=body.lang)
        raise ApiError("token_trials_exhausted", lang=body.lang, trials_remaining=0)
    return AuthContext(token=token, trials_remaining=remaining, lang=body.lang)


CurrentToken = Annotated[AuthContext, Depends(current_token)]


def fields_of(
    body: ServiceBody, *, wrapped: bool, trials_remaining: int | None = None
) -> dict[str, Any]:
    """The request's fields: the body itself, or its ``data`` object (v1.1)."""
    if not wrapped:
        return body.data
    data = body.data.get("data")
    if not isinstance(data, dict):
        raise ApiError(
            "missing_field" if data is None else "invalid_field",
            lang=body.lang,
            field="data",
            trials_remaining=trials_remaining,
        )
    return data


def _bundle_key(fields: dict[str, Any], auth: AuthContext) -> str:
    key = fields.get("bundle_key")
    if key is None or key == "":
        raise ApiError(
            "missing_field",
            lang=auth.lang,
            field="bundle_key",
            trials_remaining=auth.trials_remaining,
        )
    if not isinstance(key, str):
        raise ApiError(
            "invalid_field",
            lang=auth.lang,
            field="bundle_key",
            trials_remaining=auth.trials_remaining,
        )
    return key


def resolve_bundle(session: Session, fields: dict[str, Any], auth: AuthContext) -> Bundle:
    """The active bundle named by ``bundle_key``; it must be the token's own bundle."""
    key = _bundle_key(fields, auth)
    bundle = repository.find_bundle_by_key(session, key=key)
    if (
        bundle is None
        or bundle.id != auth.token.bundle_id
        or bundle.organisation_id != auth.token.organisation_id
    ):
        raise ApiError("bundle_invalid", lang=auth.lang, trials_remaining=auth.trials_remaining)
    return bundle


def _bundle_v1(session: SessionDep, body: ServiceBodyDep, auth: CurrentToken) -> Bundle:
    return resolve_bundle(session, fields_of(body, wrapped=False), auth)


def _bundle_v11(session: SessionDep, body: ServiceBodyDep, auth: CurrentToken) -> Bundle:
    fields = fields_of(body, wrapped=True, trials_remaining=auth.trials_remaining)
    return resolve_bundle(session, fields, auth)


BundleDep = Annotated[Bundle, Depends(_bundle_v1)]
"""The bundle of a v1 request (fields at the top level)."""
BundleV11Dep = Annotated[Bundle, Depends(_bundle_v11)]
"""The bundle of a v1.1 request (fields inside ``data``)."""
