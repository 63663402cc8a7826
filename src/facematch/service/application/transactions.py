"""Transaction inquiry and fetch-images: :class:`TransactionQueries`.

What an organisation may read back, and how. Every lookup is scoped to the
caller's organisation: a transaction of another organisation is answered
exactly like one that does not exist, so ids cannot be probed. Neither use
case takes a trial or writes a transaction. The answer is encrypted for the
organisation's registered RSA key (:mod:`facematch.protocol.envelope`)
and comes back with the bundle's HMAC secret, to sign it
(:mod:`facematch.service.signing`).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.orm import Session

from facematch.protocol.envelope import (
    ClientKeyError,
    encrypt_json_for_client,
    load_client_public_key,
)
from facematch.service.application.calls import CallRecord
from facematch.service.application.face_match import ensured_signing_secret, own_bundle
from facematch.service.errors import (
    AccessTokenNotFound,
    ImagesNotStored,
    ImagesPurged,
    InquiryConflictingFields,
    InvalidField,
    MissingField,
    PublicKeyMissing,
    StoredDataUnreadable,
    TransactionNotFound,
)
from facematch.store import repository
from facematch.store.models import Bundle, ImageRole, Outcome, Transaction
from facematch.store.sealed import load_transaction_images
from facematch.store.vault import Vault, VaultError
from facematch.store.views import TokenRef, TransactionView, transaction_views

logger = logging.getLogger(__name__)

# The images come back under the request field names of the face-match call.
IMAGE_FIELDS: dict[str, str] = {ImageRole.FIRST: "first_img", ImageRole.SECOND: "second_img"}
MAX_TEXT_FIELD_CHARS = 200


@dataclass(frozen=True)
class SealedAnswer:
    """An answer encrypted for the client, and the bundle's secret to sign it with."""

    content: dict[str, Any]
    hmac_secret: str


def iso_utc(moment: datetime | None) -> str | None:
    """``2026-11-25T21:00:00.123Z``: UTC, millisecond precision, as clients parse it."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _public(view: TransactionView) -> dict[str, Any]:
    result = None
    if view.outcome == Outcome.SUCCESS and view.is_similar is not None:
        result = {"is_similar": view.is_similar, "confidence": view.confidence}
    return {
        "transaction_id": view.id,
        "service": view.service,
        "created_at": iso_utc(view.created_at),
        "username": view.username,
        "bundle_key_prefix": view.bundle_key_prefix,
        "outcome": view.outcome,
        "error_code": view.error_code,
        "result": result,
        "distance": view.distance,
        "face_boxes": {"first": view.first_box, "second": view.second_box},
        "processing_ms": view.processing_ms,
        "reference_transaction_id": view.reference_transaction_id,
        "images_stored": [IMAGE_FIELDS[r] for r in view.image_roles if r in IMAGE_FIELDS],
        "images_purged": view.images_purged_at is not None,
        "images_purged_at": iso_utc(view.images_purged_at),
    }


def _optional_text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT_FIELD_CHARS:
        raise InvalidField(name)
    return value


def _own_transaction(session: Session, *, organisation_id: int, transaction_id: str) -> Transaction:
    transaction = repository.find_own_transaction(
        session, organisation_id=organisation_id, transaction_id=transaction_id
    )
    if transaction is None:
        raise TransactionNotFound(field="transaction_id")
    return transaction


def inquire(
    session: Session,
    *,
    organisation_id: int,
    transaction_id: str | None = None,
    access_token: str | None = None,
) -> dict[str, Any]:
    """``{"transactions": [...]}``: one transaction by id, or all made with a token."""
    if (transaction_id is None) == (access_token is None):
        if transaction_id is None:
            raise MissingField("transaction_id")
        raise InquiryConflictingFields()
    if transaction_id is not None:
        found = [
            _own_transaction(
                session, organisation_id=organisation_id, transaction_id=transaction_id
            )
        ]
    else:
        made = repository.transactions_of_token(
            session, organisation_id=organisation_id, access_token=access_token or ""
        )
        if made is None:
            raise AccessTokenNotFound(field="access_token")
        found = list(made)
    return {"transactions": [_public(view) for view in transaction_views(session, found)]}


def fetch_images(
    session: Session,
    vault: Vault,
    *,
    organisation_id: int,
    transaction_id: str,
    call: CallRecord | None = None,
) -> dict[str, Any]:
    """``{"transaction_id", "first_img", "second_img"}`` with the images as base64."""
    transaction = _own_transaction(
        session, organisation_id=organisation_id, transaction_id=transaction_id
    )
    if call is not None:
        call.transaction_id = transaction.id  # every refusal from here names it
    if transaction.images_purged_at is not None:
        raise ImagesPurged()
    try:
        images = load_transaction_images(session, vault, transaction_id=transaction.id)
    except VaultError as exc:
        # Only the key id problem is logged, never the data.
        logger.error(
            "stored images unreadable", exc_info=exc, extra={"transaction_id": transaction.id}
        )
        raise StoredDataUnreadable() from exc
    if not images:
        raise ImagesNotStored()
    answer: dict[str, Any] = {"transaction_id": transaction.id}
    for image in images:
        answer[IMAGE_FIELDS[image.role]] = base64.b64encode(image.data).decode("ascii")
    if transaction.reference_transaction_id is not None:
        answer["reference_transaction_id"] = transaction.reference_transaction_id
    return answer


class TransactionQueries:
    """The two read endpoints' use cases, built once at start-up."""

    def __init__(self, *, vault: Vault, sessions: Callable[[], Session]) -> None:
        self.vault = vault
        self.sessions = sessions

    def inquire(
        self, *, token: TokenRef, fields: Mapping[str, Any], call: CallRecord
    ) -> SealedAnswer:
        """Transactions by ``transaction_id`` (that one) or ``access_token`` (all made
        with it), for the caller's bundle (``bundle_key``, the token's own)."""
        with self.sessions() as session:
            bundle = own_bundle(session, fields, token)
            transaction_id = _optional_text(fields, "transaction_id")
            access_token = _optional_text(fields, "access_token")
            if transaction_id is None and access_token is None:
                raise MissingField("transaction_id")
            if transaction_id is not None and access_token is not None:
                raise InquiryConflictingFields()
            # Checked before any data is read, so a missing key costs nothing.
            public_key = self._public_key(session, token.organisation_id)
            answer = inquire(
                session,
                organisation_id=token.organisation_id,
                transaction_id=transaction_id,
                access_token=access_token,
            )
            return self._sealed(session, bundle, public_key, answer)

    def fetch_images(
        self, *, token: TokenRef, fields: Mapping[str, Any], call: CallRecord
    ) -> SealedAnswer:
        """The images of one transaction: ``{"transaction_id", "first_img",
        "second_img"}`` (base64 of the bytes sent)."""
        with self.sessions() as session:
            bundle = own_bundle(session, fields, token)
            transaction_id = _optional_text(fields, "transaction_id")
            if transaction_id is None:
                raise MissingField("transaction_id")
            public_key = self._public_key(session, token.organisation_id)
            answer = fetch_images(
                session,
                self.vault,
                organisation_id=token.organisation_id,
                transaction_id=transaction_id,
                call=call,
            )
            return self._sealed(session, bundle, public_key, answer)

    @staticmethod
    def _public_key(session: Session, organisation_id: int) -> rsa.RSAPublicKey:
        """The organisation's registered RSA key, or the error saying there is none."""
        pem = repository.organisation_public_key_pem(session, organisation_id=organisation_id)
        if not pem:
            raise PublicKeyMissing()
        try:
            return load_client_public_key(pem)
        except ClientKeyError as exc:  # registered before validation tightened: same answer
            raise PublicKeyMissing() from exc

    def _sealed(
        self, session: Session, bundle: Bundle, public_key: rsa.RSAPublicKey, answer: Any
    ) -> SealedAnswer:
        created = bundle.hmac_secret_ciphertext is None
        secret = ensured_signing_secret(session, self.vault, bundle)
        if created:
            session.commit()  # only a bundle made before secrets came with bundles
        return SealedAnswer(encrypt_json_for_client(answer, public_key), secret)
