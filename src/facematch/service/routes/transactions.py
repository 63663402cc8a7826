"""``POST /api/v1/transaction/inquire/`` and ``POST /api/v1/transaction/fetch-images/``.

Both read back data of earlier transactions, so they are not services: they
take no trial from the access token and create no transaction. They need a
live (unexpired, unrevoked) bearer token and the ``bundle_key`` of the token's
own bundle (the rule of :func:`facematch.service.auth.resolve_bundle`). The
answer is ``{"key", "data"}`` encrypted for the organisation's registered RSA
key (docs/transactions.md), signed with the bundle's ``hmac``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from facematch.service import transactions
from facematch.service.auth import ServiceBodyDep, SessionDep, presented_token
from facematch.service.client_crypto import encrypt_json_for_client
from facematch.service.errors import ApiError
from facematch.store import repository
from facematch.store.models import AccessToken, Bundle, utcnow
from facematch.store.vault import Vault

router = APIRouter(tags=["transactions"])

INQUIRE_PATH = "/api/v1/transaction/inquire/"
FETCH_IMAGES_PATH = "/api/v1/transaction/fetch-images/"


@dataclass(frozen=True)
class ReadAccess:
    """A caller allowed to read its organisation's transactions."""

    token: AccessToken
    bundle: Bundle
    lang: str
    fields: dict[str, Any]


def read_access(request: Request, session: SessionDep, body: ServiceBodyDep) -> ReadAccess:
    token = presented_token(request, session, lang=body.lang)
    if token.expires_at <= utcnow():
        raise ApiError("token_expired", lang=body.lang)
    key = body.data.get("bundle_key")
    if key is None or key == "":
        raise ApiError("missing_field", lang=body.lang, field="bundle_key")
    if not isinstance(key, str):
        raise ApiError("invalid_field", lang=body.lang, field="bundle_key")
    bundle = repository.find_bundle_by_key(session, key=key)
    if (
        bundle is None
        or bundle.id != token.bundle_id
        or bundle.organisation_id != token.organisation_id
    ):
        raise ApiError("bundle_invalid", lang=body.lang)
    return ReadAccess(token=token, bundle=bundle, lang=body.lang, fields=body.data)


ReadAccessDep = Annotated[ReadAccess, Depends(read_access)]


def _vault(request: Request) -> Vault:
    return request.app.state.vault


def _optional_text(access: ReadAccess, name: str) -> str | None:
    value = access.fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 200:
        raise ApiError("invalid_field", lang=access.lang, field=name)
    return value


def _public_key(session: SessionDep, access: ReadAccess) -> rsa.RSAPublicKey:
    # Checked before any data is read, so a missing key costs nothing.
    return transactions.client_public_key(
        session, organisation_id=access.token.organisation_id, lang=access.lang
    )


def _encrypted_answer(
    request: Request,
    session: SessionDep,
    access: ReadAccess,
    public_key: rsa.RSAPublicKey,
    answer: dict[str, Any],
) -> Response:
    return transactions.signed_for_bundle(
        session,
        _vault(request),
        access.bundle,
        encrypt_json_for_client(answer, public_key),
        lang=access.lang,
    )


@router.post(INQUIRE_PATH)
@router.post(INQUIRE_PATH.rstrip("/"), include_in_schema=False)
def inquire(request: Request, session: SessionDep, access: ReadAccessDep) -> Response:
    """Transactions by ``transaction_id`` (that one) or ``access_token`` (all made with it).

    Decrypted answer: ``{"transactions": [...]}`` (see docs/transactions.md).
    """
    transaction_id = _optional_text(access, "transaction_id")
    access_token = _optional_text(access, "access_token")
    if transaction_id is None and access_token is None:
        raise ApiError("missing_field", lang=access.lang, field="transaction_id")
    if transaction_id is not None and access_token is not None:
        raise ApiError("inquiry_conflicting_fields", lang=access.lang)
    public_key = _public_key(session, access)
    answer = transactions.inquire(
        session,
        organisation_id=access.token.organisation_id,
        lang=access.lang,
        transaction_id=transaction_id,
        access_token=access_token,
    )
    return _encrypted_answer(request, session, access, public_key, answer)


@router.post(FETCH_IMAGES_PATH)
@router.post(FETCH_IMAGES_PATH.rstrip("/"), include_in_schema=False)
def fetch_images(request: Request, session: SessionDep, access: ReadAccessDep) -> Response:
    """The images of one transaction. Decrypted answer:
    ``{"transaction_id", "first_img", "second_img"}`` (base64 of the bytes sent)."""
    transaction_id = _optional_text(access, "transaction_id")
    if transaction_id is None:
        raise ApiError("missing_field", lang=access.lang, field="transaction_id")
    public_key = _public_key(session, access)
    answer = transactions.fetch_images(
        session,
        _vault(request),
        organisation_id=access.token.organisation_id,
        transaction_id=transaction_id,
        lang=access.lang,
    )
    return _encrypted_answer(request, session, access, public_key, answer)
