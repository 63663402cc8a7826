"""``POST /api/v1/face/match/`` and ``/api/v1.1/face/match/`` (fields in ``data``).

Both paths also answer without the trailing slash (Valify's sample client posts
there), with no redirect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from facematch.service.auth import (
    BundleDep,
    BundleV11Dep,
    CurrentToken,
    ServiceBodyDep,
    SessionDep,
    fields_of,
)
from facematch.service.matching import run_face_match
from facematch.service.schemas import (
    ErrorResponse,
    FaceMatchRequest,
    FaceMatchRequestV11,
    FaceMatchResponse,
)
from facematch.service.serving import engine_slot
from facematch.service.transactions import signed_for_bundle
from facematch.service.workpool import BoundPool
from facematch.store.models import Bundle

router = APIRouter(tags=["face match"])

V1_PATH = "/api/v1/face/match"
V11_PATH = "/api/v1.1/face/match"
# The only endpoints whose bodies carry images (the body limit is per path).
IMAGE_PATH_PREFIXES = (V1_PATH, V11_PATH)


async def engine_capacity(request: Request, body: ServiceBodyDep) -> AsyncIterator[BoundPool]:
    """A work-pool slot held for the whole request; when none is free, 429 at once,
    before any trial is taken (declared before ``CurrentToken`` for that reason)."""
    async with engine_slot(request, lang=body.lang) as pool:
        yield pool


EngineCapacity = Annotated[BoundPool, Depends(engine_capacity)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed JSON, bad lang, missing field"},
    401: {"model": ErrorResponse, "description": "Invalid bundle key / service not enabled"},
    403: {"model": ErrorResponse, "description": "Missing, unknown, expired or used-up token"},
    413: {"model": ErrorResponse, "description": "Request body over the size limit"},
    415: {"model": ErrorResponse, "description": "Body is not application/json"},
    422: {"model": ErrorResponse, "description": "Processing error (see error_code)"},
    429: {"model": ErrorResponse, "description": "Bundle quota exhausted or server busy"},
    500: {"model": ErrorResponse, "description": "Server fault (logged with a request id)"},
}


def _schema_body(*, wrapped: bool) -> dict[str, Any]:
    schema = FaceMatchRequest.model_json_schema()
    if wrapped:
        schema = {
            "title": FaceMatchRequestV11.__name__,
            "type": "object",
            "required": ["data"],
            "properties": {"data": schema},
        }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    }


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", None) or "-"


async def _signed(
    request: Request, session: Session, bundle: Bundle, result: FaceMatchResponse, *, lang: str
) -> Response:
    """The canonical JSON body with the bundle's ``hmac`` header (docs/transactions.md)."""
    return await run_in_threadpool(
        lambda: signed_for_bundle(
            session, request.app.state.vault, bundle, result.model_dump(mode="json"), lang=lang
        )
    )


async def face_match(
    request: Request,
    body: ServiceBodyDep,
    pool: EngineCapacity,
    auth: CurrentToken,
    bundle: BundleDep,
    session: SessionDep,
) -> Response:
    """Tell whether two face photos (selfie, ID document) show the same person.

    Instead of ``second_img``, ``transaction_id`` names an earlier successful
    face-match transaction of your organisation: ``first_img`` is then matched
    against the ID-document face stored with it.
    """
    result = await run_face_match(
        session=session,
        auth=auth,
        bundle=bundle,
        fields=fields_of(body, wrapped=False),
        matcher=request.app.state.matcher,
        pool=pool,
        request_id=_request_id(request),
        vault=request.app.state.vault,
        max_image_bytes=request.app.state.settings.max_image_bytes,
    )
    return await _signed(request, session, bundle, result, lang=auth.lang)


async def face_match_v11(
    request: Request,
    body: ServiceBodyDep,
    pool: EngineCapacity,
    auth: CurrentToken,
    bundle: BundleV11Dep,
    session: SessionDep,
) -> Response:
    """The same as v1, with the request fields wrapped in a ``data`` object."""
    result = await run_face_match(
        session=session,
        auth=auth,
        bundle=bundle,
        fields=fields_of(body, wrapped=True, trials_remaining=auth.trials_remaining),
        matcher=request.app.state.matcher,
        pool=pool,
        request_id=_request_id(request),
        vault=request.app.state.vault,
        max_image_bytes=request.app.state.settings.max_image_bytes,
    )
    return await _signed(request, session, bundle, result, lang=auth.lang)


for prefix, endpoint, wrapped in (
    (V1_PATH, face_match, False),
    (V11_PATH, face_match_v11, True),
):
    for path, visible in ((prefix + "/", True), (prefix, False)):
        router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            response_model=FaceMatchResponse,
            responses=_ERRORS,
            openapi_extra=_schema_body(wrapped=wrapped),
            include_in_schema=visible,
            name=endpoint.__name__ + ("" if visible else "_no_slash"),
        )
