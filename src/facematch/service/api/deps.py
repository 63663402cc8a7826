"""Request dependencies, as typed ``Annotated`` aliases routes declare.

The parts the app was built from (:class:`Services`: settings, vault, matcher,
work pool and the use cases; the metrics registry, readiness checks and the
token endpoint's guard) come from the composition root in
:mod:`facematch.service.app` through the dependencies below; this module is the
only reader of ``request.app.state``, never a route.

Order of checks for a service call (each raises an error of
:mod:`facematch.service.errors`, answered by the one handler):

1. :data:`ServiceBodyDep` — JSON media type (415); a body that may be big
   (over :data:`PEEK_BODY_BYTES` declared, or chunked) is read only after the
   bearer token is found live from the headers alone (403, in English or the
   ``Accept-Language``, connection closed): an anonymous client cannot make
   the server buffer or parse megabytes. Then a parsable JSON object (400,
   parsed off the event loop when big) and a valid ``lang`` (400), which from
   then on is the language of every answer (``request.state.lang``).
2. :data:`EngineCapacity` (face match only) — a work-pool slot, or 429 at once:
   declared before the token, so a refused request costs no trial.
3. :data:`PresentedToken` / :data:`LiveToken` — the bearer token from
   ``Authorization`` (or the ``Authentication`` header Valify's docs name):
   missing, unknown or revoked → 403; :data:`LiveToken` also refuses an
   expired one. Face match takes the trial itself, in its opening commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from facematch.service.api.json_body import parse_json_object
from facematch.service.application.calls import CallRecord
from facematch.service.application.demo import DemoService
from facematch.service.application.services import Services
from facematch.service.errors import (
    DEFAULT_LANG,
    LANGS,
    InvalidLang,
    ServiceError,
    TokenMissing,
    UnsupportedMediaType,
)
from facematch.service.runtime.body_limit import declared_length
from facematch.service.runtime.metrics import ServiceMetrics
from facematch.service.runtime.readiness import MetricsAccess, Readiness
from facematch.service.runtime.throttle import TokenGuard
from facematch.service.runtime.workpool import BoundPool
from facematch.store.views import TokenRef

JSON_MEDIA_TYPES = ("application/json",)
AUTH_HEADERS = ("authorization", "authentication")
# Bodies up to this size are read before authentication, so that even a refusal
# speaks the body's ``lang``; larger ones only once the token is known live.
PEEK_BODY_BYTES = 64 * 1024
# Parsing a multi-megabyte JSON body would hold up every other request: off the event loop.
OFF_LOOP_PARSE_BYTES = 256 * 1024


# Dependencies that only read what is already in memory are async: FastAPI runs a
# plain ``def`` dependency on a worker thread, a hop per request for a field read,
# and the probes and /metrics must answer even while every worker thread is busy.
async def get_services(request: Request) -> Services:
    """The parts the composition root built for this app."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_demo(services: ServicesDep) -> DemoService:
    return services.demo


DemoDep = Annotated[DemoService, Depends(get_demo)]


async def get_readiness(request: Request) -> Readiness | None:
    """The readiness checks, or None until the lifespan has registered them."""
    readiness: Readiness | None = getattr(request.app.state, "readiness", None)
    return readiness


async def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


async def get_metrics_access(request: Request) -> MetricsAccess | None:
    """Who may read ``/metrics``; None (an app built without it) leaves it open."""
    access: MetricsAccess | None = getattr(request.app.state, "metrics_access", None)
    return access


ReadinessDep = Annotated[Readiness | None, Depends(get_readiness)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
MetricsAccessDep = Annotated[MetricsAccess | None, Depends(get_metrics_access)]


async def get_token_guard(request: Request, services: ServicesDep) -> TokenGuard:
    """This worker's token-endpoint guard, made on first use: on the event loop,
    which its CapacityLimiter belongs to (hence an async dependency)."""
    guard: TokenGuard | None = getattr(request.app.state, "token_guard", None)
    if guard is None:
        guard = TokenGuard.from_settings(services.settings)
        request.app.state.token_guard = guard
    return guard


TokenGuardDep = Annotated[TokenGuard, Depends(get_token_guard)]


@dataclass(frozen=True)
class ServiceBody:
    """A parsed JSON request body. Its language is not here: it is the request's
    (``request.state.lang``), which the error handler reads."""

    data: dict[str, Any]


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
        raise InvalidLang()
    return lang.strip().lower()


def header_lang(request: Request) -> str:
    """The language of an answer given before the body (and its ``lang``) is read."""
    accept = request.headers.get("accept-language", "")
    return "ar" if accept.strip().lower().startswith("ar") else DEFAULT_LANG


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


def _find_token(request: Request, services: Services, *, live: bool) -> TokenRef:
    presented = bearer_token(request)
    if presented is None:
        raise TokenMissing()
    # Found once per request: a big body's header check already looked it up.
    known: tuple[str, TokenRef] | None = getattr(request.state, "presented_token", None)
    if known is not None and known[0] == presented:
        token = known[1]
    else:
        token = services.tokens.presented(presented)
        request.state.presented_token = (presented, token)
    if live:
        # The same expiry rule as the service's, on the row just read.
        services.tokens.live_check(token)
    return token


def _require_live_token(request: Request, services: Services) -> None:
    """Refuse from the headers a request whose token is missing, unknown or dead.

    The body is not read, so the connection is closed after the answer instead
    of draining what the client still sends; the answer speaks ``Accept-Language``.
    """
    try:
        _find_token(request, services, live=True)
    except ServiceError as exc:
        request.state.lang = header_lang(request)
        exc.close_connection = True
        raise


async def service_body(request: Request, services: ServicesDep) -> ServiceBody:
    request.state.call = CallRecord()
    if not _is_json(request.headers.get("content-type")):
        raise UnsupportedMediaType()
    declared = declared_length(request.scope)
    if declared is None or declared > PEEK_BODY_BYTES:
        await run_in_threadpool(_require_live_token, request, services)
    raw = await request.body()
    if len(raw) > OFF_LOOP_PARSE_BYTES:
        data = await run_in_threadpool(parse_json_object, raw)
    else:
        data = parse_json_object(raw)  # InvalidJsonError is an error of the tree
    request.state.lang = _lang_of(data)
    return ServiceBody(data=data)


ServiceBodyDep = Annotated[ServiceBody, Depends(service_body)]


async def call_record(request: Request, _body: ServiceBodyDep) -> CallRecord:
    """What this call has cost so far; the error handler reports it."""
    record: CallRecord = request.state.call
    return record


CallDep = Annotated[CallRecord, Depends(call_record)]


async def engine_capacity(
    request: Request, services: ServicesDep, _body: ServiceBodyDep
) -> AsyncIterator[BoundPool]:
    """A work-pool slot held for the whole request; when none is free, 429 at once,
    before any trial is taken (declared before the token for that reason)."""
    ticket = services.pool.admit()
    try:
        yield BoundPool(
            services.pool, ticket=ticket, deadline=getattr(request.state, "deadline", None)
        )
    finally:
        ticket.release()


EngineCapacity = Annotated[BoundPool, Depends(engine_capacity)]


async def presented_token(
    request: Request, services: ServicesDep, _body: ServiceBodyDep
) -> TokenRef:
    return await run_in_threadpool(_find_token, request, services, live=False)


async def live_token(request: Request, services: ServicesDep, _body: ServiceBodyDep) -> TokenRef:
    return await run_in_threadpool(_find_token, request, services, live=True)


PresentedToken = Annotated[TokenRef, Depends(presented_token)]
"""The request's token, found (face match checks its expiry as it takes the trial)."""
LiveToken = Annotated[TokenRef, Depends(live_token)]
"""The request's token, found and unexpired (the read endpoints)."""


async def request_id(request: Request) -> str:
    return getattr(request.state, "request_id", None) or "-"


RequestIdDep = Annotated[str, Depends(request_id)]
