"""Transaction inquiry and fetch-images: what an organisation may read back, and how.

Service functions between the thin routes and the store. Every lookup is
scoped to the caller's organisation: a transaction of another organisation is
answered exactly like one that does not exist, so ids cannot be probed.
Answers are JSON-ready dicts; the routes encrypt them for the client
(:mod:`facematch.service.client_crypto`) and sign the envelope
(:mod:`facematch.service.signing`).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from facematch.engine.errors import EngineError
from facematch.engine.images import decode_base64
from facematch.service.client_crypto import ClientKeyError, load_client_public_key
from facematch.service.errors import ApiError
from facematch.service.signing import signed_json_response
from facematch.store import security
from facematch.store.models import (
    AccessToken,
    Bundle,
    Organisation,
    Transaction,
    TransactionImage,
    User,
)
from facematch.store.sealed import (
    ensure_bundle_hmac_secret,
    load_transaction_images,
    seal_transaction_images,
)
from facematch.store.vault import Vault, VaultError

logger = logging.getLogger(__name__)

# The images come back under the request field names of the face-match call.
IMAGE_FIELDS = {"first": "first_img", "second": "second_img"}


def iso_utc(moment: datetime | None) -> str | None:
    """``2026-11-25T21:00:00.123Z``: UTC, millisecond precision, as clients parse it."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def client_public_key(session: Session, *, organisation_id: int, lang: str) -> rsa.RSAPublicKey:
    """The organisation's registered RSA key, or the catalogue error saying there is none."""
    pem = session.scalar(
        select(Organisation.rsa_public_key_pem).where(Organisation.id == organisation_id)
    )
    if not pem:
        raise ApiError("public_key_missing", lang=lang)
    try:
        return load_client_public_key(pem)
    except ClientKeyError as exc:  # registered before validation tightened: same answer
        raise ApiError("public_key_missing", lang=lang) from exc


def _view(
    transaction: Transaction, *, username: str, bundle_key_prefix: str, roles: Sequence[str]
) -> dict[str, Any]:
    """What an inquiry reveals of one transaction: metadata only, never embeddings."""
    result = None
    if transaction.outcome == "success" and transaction.is_similar is not None:
        result = {"is_similar": transaction.is_similar, "confidence": transaction.confidence}
    return {
        "transaction_id": transaction.id,
        "service": transaction.service,
        "created_at": iso_utc(transaction.created_at),
        "username": username,
        "bundle_key_prefix": bundle_key_prefix,
        "outcome": transaction.outcome,
        "error_code": transaction.error_code,
        "result": result,
        "distance": transaction.distance,
        "face_boxes": {"first": transaction.first_box, "second": transaction.second_box},
        "processing_ms": transaction.processing_ms,
        "reference_transaction_id": transaction.reference_transaction_id,
        "images_stored": [IMAGE_FIELDS[role] for role in roles if role in IMAGE_FIELDS],
        "images_purged": transaction.images_purged_at is not None,
        "images_purged_at": iso_utc(transaction.images_purged_at),
    }


def _views(session: Session, transactions: Sequence[Transaction]) -> list[dict[str, Any]]:
    if not transactions:
        return []
    ids = [t.id for t in transactions]
    roles: dict[str, list[str]] = {tid: [] for tid in ids}
    for tid, role in session.execute(
        select(TransactionImage.transaction_id, TransactionImage.role)
        .where(TransactionImage.transaction_id.in_(ids))
        .order_by(TransactionImage.role)
    ):
        roles[tid].append(role)
    # Comprehensions, not dict(result): a Result has .keys() and would be read as a mapping.
    names = {
        user_id: username
        for user_id, username in session.execute(
            select(User.id, User.username).where(User.id.in_({t.user_id for t in transactions}))
        )
    }
    prefixes = {
        bundle_id: prefix
        for bundle_id, prefix in session.execute(
            select(Bundle.id, Bundle.key_prefix).where(
                Bundle.id.in_({t.bundle_id for t in transactions})
            )
        )
    }
    return [
        _view(
            t,
            username=names.get(t.user_id, ""),
            bundle_key_prefix=prefixes.get(t.bundle_id, ""),
            roles=roles[t.id],
        )
        for t in transactions
    ]


def _own_transaction(
    session: Session, *, organisation_id: int, transaction_id: str, lang: str
) -> Transaction:
    transaction = session.scalar(
        select(Transaction).where(
            Transaction.id == transaction_id, Transaction.organisation_id == organisation_id
        )
    )
    if transaction is None:
        raise ApiError("transaction_not_found", lang=lang, field="transaction_id")
    return transaction


def inquire(
    session: Session,
    *,
    organisation_id: int,
    lang: str,
    transaction_id: str | None = None,
    access_token: str | None = None,
) -> dict[str, Any]:
    """``{"transactions": [...]}``: one transaction by id, or all made with a token."""
    if (transaction_id is None) == (access_token is None):
        if transaction_id is None:
            raise ApiError("missing_field", lang=lang, field="transaction_id")
        raise ApiError("inquiry_conflicting_fields", lang=lang)
    if transaction_id is not None:
        found = [
            _own_transaction(
                session, organisation_id=organisation_id, transaction_id=transaction_id, lang=lang
            )
        ]
    else:
        token = session.scalar(
            select(AccessToken).where(
                AccessToken.token_hash == security.digest_secret(access_token or ""),
                AccessToken.organisation_id == organisation_id,
            )
        )
        if token is None:
            raise ApiError("access_token_not_found", lang=lang, field="access_token")
        found = list(
            session.scalars(
                select(Transaction)
                .where(
                    Transaction.token_id == token.id,
                    Transaction.organisation_id == organisation_id,
                )
                .order_by(Transaction.created_at, Transaction.id)
            ).all()
        )
    return {"transactions": _views(session, found)}


def fetch_images(
    session: Session, vault: Vault, *, organisation_id: int, transaction_id: str, lang: str
) -> dict[str, Any]:
    """``{"transaction_id", "first_img", "second_img"}`` with the images as base64."""
    transaction = _own_transaction(
        session, organisation_id=organisation_id, transaction_id=transaction_id, lang=lang
    )
    if transaction.images_purged_at is not None:
        raise ApiError("images_purged", lang=lang, transaction_id=transaction.id)
    try:
        images = load_transaction_images(session, vault, transaction_id=transaction.id)
    except VaultError as exc:
        # Only the key id problem is logged, never the data.
        logger.error(
            "stored images unreadable", exc_info=exc, extra={"transaction_id": transaction.id}
        )
        raise ApiError("stored_data_unreadable", lang=lang, transaction_id=transaction.id) from exc
    if not images:
        raise ApiError("images_not_stored", lang=lang, transaction_id=transaction.id)
    answer: dict[str, Any] = {"transaction_id": transaction.id}
    for image in images:
        answer[IMAGE_FIELDS[image.role]] = base64.b64encode(image.data).decode("ascii")
    if transaction.reference_transaction_id is not None:
        answer["reference_transaction_id"] = transaction.reference_transaction_id
    return answer


@dataclass(frozen=True)
class PreparedImages:
    """A call's images decoded and sealed for its row, before any database work."""

    decoded: dict[str, bytes]  # by role, for the engine
    rows: list[TransactionImage]  # encrypted, not yet in any session


def prepare_images(
    vault: Vault,
    *,
    transaction_id: str,
    bundle: Bundle,
    images: dict[str, str | None],
    max_bytes: int,
) -> PreparedImages:
    """Decode the call's images (``{"first": base64, "second": base64 | None}``) and seal
    them for ``transaction_id``: the heavy part of storing them, with no lock held.

    Nothing is stored when the bundle has image storage off. An image whose
    base64 cannot be decoded is skipped: there are no image bytes to keep, and
    the engine reports the error to the client.
    """
    if not bundle.store_images:
        return PreparedImages(decoded={}, rows=[])
    decoded: dict[str, bytes] = {}
    for role, encoded in images.items():
        if not encoded:
            continue
        try:
            decoded[role] = decode_base64(encoded, max_bytes=max_bytes)
        except EngineError:
            continue
    rows = seal_transaction_images(vault, transaction_id=transaction_id, images=decoded)
    return PreparedImages(decoded=decoded, rows=rows)


def record_images(
    session: Session,
    vault: Vault,
    *,
    transaction_id: str,
    bundle: Bundle,
    images: dict[str, str | None],
    max_bytes: int,
) -> dict[str, bytes]:
    """:func:`prepare_images`, added to the session (the caller commits); the decoded
    bytes by role."""
    prepared = prepare_images(
        vault, transaction_id=transaction_id, bundle=bundle, images=images, max_bytes=max_bytes
    )
    session.add_all(prepared.rows)
    return prepared.decoded


def signed_for_bundle(
    session: Session, vault: Vault, bundle: Bundle, content: Any, *, lang: str
) -> Response:
    """``content`` as a canonical JSON response with the bundle's ``hmac`` header.

    Creates the bundle's HMAC secret if it has none yet (committed).
    """
    try:
        secret = ensure_bundle_hmac_secret(session, vault, bundle)
    except VaultError as exc:
        logger.error("bundle HMAC secret unreadable", exc_info=exc)
        raise ApiError("stored_data_unreadable", lang=lang) from exc
    session.commit()
    return signed_json_response(content, secret=secret)
