"""``POST /api/v1/transaction/inquire/`` and ``POST /api/v1/transaction/fetch-images/``.

Both read back data of earlier transactions, so they are not services: they
take no trial from the access token and create no transaction. They need a
live (unexpired, unrevoked) bearer token and the ``bundle_key`` of the token's
own bundle. The answer is ``{"key", "data"}`` encrypted for the organisation's
registered RSA key (docs/transactions.md), signed with the bundle's ``hmac``.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from facematch.service.api.deps import CallDep, LiveToken, ServiceBodyDep, ServicesDep
from facematch.service.signing import signed_json_response

router = APIRouter(tags=["transactions"])

INQUIRE_PATH = "/api/v1/transaction/inquire/"
FETCH_IMAGES_PATH = "/api/v1/transaction/fetch-images/"


@router.post(INQUIRE_PATH)
@router.post(INQUIRE_PATH.rstrip("/"), include_in_schema=False)
async def inquire(
    body: ServiceBodyDep, token: LiveToken, services: ServicesDep, call: CallDep
) -> Response:
    """Transactions by ``transaction_id`` (that one) or ``access_token`` (all made with it).

    Decrypted answer: ``{"transactions": [...]}`` (see docs/transactions.md).
    """
    answer = await run_in_threadpool(
        services.transactions.inquire, token=token, fields=body.data, call=call
    )
    return signed_json_response(answer.content, secret=answer.hmac_secret)


@router.post(FETCH_IMAGES_PATH)
@router.post(FETCH_IMAGES_PATH.rstrip("/"), include_in_schema=False)
async def fetch_images(
    body: ServiceBodyDep, token: LiveToken, services: ServicesDep, call: CallDep
) -> Response:
    """The images of one transaction. Decrypted answer:
    ``{"transaction_id", "first_img", "second_img"}`` (base64 of the bytes sent)."""
    answer = await run_in_threadpool(
        services.transactions.fetch_images, token=token, fields=body.data, call=call
    )
    return signed_json_response(answer.content, secret=answer.hmac_secret)
