"""``POST /api/v1/face/match/`` and ``/api/v1.1/face/match/`` (fields in ``data``).

Both paths also answer without the trailing slash (Valify's sample client posts
there), with no redirect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from facematch.service.api.deps import (
    CallDep,
    EngineCapacity,
    PresentedToken,
    RequestIdDep,
    ServiceBodyDep,
    ServicesDep,
)
from facematch.service.api.schemas import (
    ErrorResponse,
    FaceMatchRequest,
    FaceMatchRequestV11,
    FaceMatchResponse,
    FaceMatchResult,
)
from facematch.service.application.face_match import MatchOutcome
from facematch.service.signing import signed_json_response

router = APIRouter(tags=["face match"])

V1_PATH = "/api/v1/face/match"
V11_PATH = "/api/v1.1/face/match"
# The only endpoints whose bodies carry images (the body limit is per path).
IMAGE_PATH_PREFIXES = (V1_PATH, V11_PATH)

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


def _signed_answer(outcome: MatchOutcome) -> Response:
    """The canonical JSON body with the bundle's ``hmac`` header (docs/transactions.md)."""
    answer = FaceMatchResponse(
        result=FaceMatchResult(is_similar=outcome.is_similar, confidence=outcome.confidence),
        transaction_id=outcome.transaction_id,
        trials_remaining=outcome.trials_remaining,
    )
    return signed_json_response(answer.model_dump(mode="json"), secret=outcome.hmac_secret)


def _endpoint(*, wrapped: bool, name: str, doc: str) -> Callable[..., Awaitable[Response]]:
    """The route handler of one API version (v1.1 wraps the fields in ``data``)."""

    async def endpoint(
        body: ServiceBodyDep,
        pool: EngineCapacity,
        token: PresentedToken,
        services: ServicesDep,
        call: CallDep,
        request_id: RequestIdDep,
    ) -> Response:
        outcome = await services.face_match.match(
            token=token,
            body=body.data,
            wrapped=wrapped,
            pool=pool,
            call=call,
            request_id=request_id,
        )
        return _signed_answer(outcome)

    endpoint.__name__ = endpoint.__qualname__ = name
    endpoint.__doc__ = doc  # the operation's description in the OpenAPI document
    return endpoint


face_match = _endpoint(
    wrapped=False,
    name="face_match",
    doc="""Tell whether two face photos (selfie, ID document) show the same person.

    Instead of ``second_img``, ``transaction_id`` names an earlier successful
    face-match transaction of your organisation: ``first_img`` is then matched
    against the ID-document face stored with it.
    """,
)
face_match_v11 = _endpoint(
    wrapped=True,
    name="face_match_v11",
    doc="The same as v1, with the request fields wrapped in a ``data`` object.",
)


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
