"""The face-match use case: :class:`FaceMatchService`.

One call, step by step (the route has parsed the JSON body, taken a work-pool
slot and found the bearer token; nothing is written yet):

1. *Check* (reads and CPU only, no lock): the fields (400), the bundle named by
   ``bundle_key`` — the token's own, active (401) — enabled for face match
   (401) with quota left (429, a plain read); the reference transaction of the
   variant with ``transaction_id`` looked up in the caller's organisation; the
   images decoded from base64 once, and sealed for storage when the bundle
   keeps images. A refusal found here is held back until step 2 has run.
2. *Open* — one database transaction, one commit: one trial of the token
   (403 when none is left: expired, revoked or used up — this answer wins over
   any refusal of step 1); then either the held-back refusal (only the trial
   is committed) or the ``pending`` row with its images, the bundle's HMAC
   secret if it has none yet, and one unit of quota taken last, by an atomic
   ``UPDATE`` (none for an unlimited bundle), so the bundle's row lock is held
   for that statement and the commit only. A reference that does not exist is
   recorded as an ``error`` transaction in the same commit (422).
3. *Run* the engine on the bounded work pool with the decoded bytes (429 when
   full, ``request_timeout`` when the deadline passes, 422 for the image's faults).
4. *Finish* — one commit: the row gets its outcome (``success`` with score,
   boxes and the reference descriptor, or ``error`` with the catalogue code). A
   call that dies before this stays ``pending`` until the housekeeping sweep
   closes it as ``abandoned`` (docs/transactions.md); a purge that ran
   meanwhile wins.

Two commits for a successful call, none in the response path. What the call
has cost (trials left, transaction id) is written into the caller's
:class:`~facematch.service.application.calls.CallRecord` as soon as it is
committed, so an error answer can report it.

The reference face is the ID-document side, ``second_img``: its 128-d
descriptor (float32 bytes, encrypted under the image keys: it is biometric
data) and the model id are stored with a successful transaction; a
reference-variant transaction copies its reference on (re-encrypted for its
own row), so chains of re-verifications keep working.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import numpy as np
from pydantic import ValidationError
from sqlalchemy.orm import Session

from facematch.engine.errors import EngineError
from facematch.engine.images import decode_base64
from facematch.engine.protocols import Matcher
from facematch.engine.types import MatchResult
from facematch.service.application.calls import CallRecord
from facematch.service.application.requests import FaceMatchRequest
from facematch.service.errors import (
    BundleInvalid,
    ConflictingFields,
    InternalError,
    InvalidField,
    MissingField,
    Overloaded,
    QuotaExhausted,
    ReferenceModelMismatch,
    ReferenceNotFound,
    ServiceError,
    ServiceNotEnabled,
    StoredDataUnreadable,
    TokenExpired,
    TokenInvalid,
    TrialsExhausted,
    entry_for,
)
from facematch.service.runtime.workpool import BoundPool
from facematch.store import repository
from facematch.store.models import (
    FACE_MATCH,
    IMAGE_ROLES,
    Bundle,
    Outcome,
    TransactionImage,
    new_transaction_id,
    utcnow,
)
from facematch.store.sealed import (
    bundle_hmac_secret,
    ensure_bundle_hmac_secret,
    open_reference_embedding,
    seal_reference_embedding,
    seal_transaction_images,
)
from facematch.store.vault import Vault, VaultError
from facematch.store.views import TokenRef

logger = logging.getLogger(__name__)

CONFIDENCE_DECIMALS = 4


@dataclass(frozen=True)
class MatchOutcome:
    """A successful call: the answer, and the secret to sign it with."""

    transaction_id: str
    is_similar: bool
    confidence: float
    trials_remaining: int
    hmac_secret: str


@dataclass(frozen=True)
class _Reference:
    transaction_id: str
    model_id: str
    embedding: bytes


@dataclass(frozen=True)
class _Checked:
    """What step 1 found, for step 2 to write."""

    bundle: Bundle
    reference_id: str | None
    reference: _Reference | None
    images: dict[str, bytes | EngineError]  # by role: the bytes, or why they did not decode
    sealed: list[TransactionImage]  # the images encrypted for storage (none if not kept)
    hmac_secret: str | None  # None: the bundle has none yet


@dataclass(frozen=True)
class _Opened:
    transaction_id: str
    reference: _Reference | None
    images: dict[str, bytes | EngineError]  # by role: the bytes, or why they did not decode
    hmac_secret: str
    trials_remaining: int


def reported_confidence(confidence: float) -> float:
    """Rounded to 4 decimals and kept inside (0, 1): a calibrated probability is never
    certain, and 0 or 1 would serialize as JSON integers."""
    step = 10.0**-CONFIDENCE_DECIMALS
    return min(max(round(float(confidence), CONFIDENCE_DECIMALS), step), 1.0 - step)


def request_fields(body: Mapping[str, Any], *, wrapped: bool) -> Mapping[str, Any]:
    """The request's fields: the body itself, or its ``data`` object (v1.1)."""
    if not wrapped:
        return body
    data = body.get("data")
    if not isinstance(data, dict):
        raise (MissingField if data is None else InvalidField)("data")
    return data


def bundle_key_of(fields: Mapping[str, Any]) -> str:
    key = fields.get("bundle_key")
    if key is None or key == "":
        raise MissingField("bundle_key")
    if not isinstance(key, str):
        raise InvalidField("bundle_key")
    return key


@contextmanager
def _secret_readable() -> Iterator[None]:
    """A bundle secret the configured keys cannot open is :class:`StoredDataUnreadable`."""
    try:
        yield
    except VaultError as exc:
        logger.error("bundle HMAC secret unreadable", exc_info=exc)
        raise StoredDataUnreadable() from exc


def signing_secret(vault: Vault, bundle: Bundle) -> str | None:
    """The bundle's HMAC secret in clear, to sign answers with; None when it has none yet."""
    if bundle.hmac_secret_ciphertext is None:
        return None
    with _secret_readable():
        return bundle_hmac_secret(vault, bundle)


def ensured_signing_secret(session: Session, vault: Vault, bundle: Bundle) -> str:
    """:func:`signing_secret`, made first (flushed; the caller commits) for a bundle
    created before secrets came with bundles."""
    with _secret_readable():
        return ensure_bundle_hmac_secret(session, vault, bundle)


def own_bundle(session: Session, fields: Mapping[str, Any], token: TokenRef) -> Bundle:
    """The active bundle named by ``bundle_key``; it must be the token's own bundle.

    Another bundle's key, even of the same organisation, gets the same answer as
    an unknown key: a business unit's token never spends another unit's quota,
    and the answer does not tell whether the key exists.
    """
    bundle = repository.find_bundle_by_key(session, key=bundle_key_of(fields))
    if (
        bundle is None
        or bundle.id != token.bundle_id
        or bundle.organisation_id != token.organisation_id
    ):
        raise BundleInvalid()
    return bundle


def parse_request(fields: Mapping[str, Any]) -> FaceMatchRequest:
    """Validate the request fields into the schema."""
    # lang was already checked (case-insensitively) by the HTTP layer.
    candidate = {key: value for key, value in fields.items() if key != "lang"}
    try:
        request = FaceMatchRequest.model_validate(candidate)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "body"
        raise (MissingField if first["type"] == "missing" else InvalidField)(field) from exc
    if request.second_img is not None and request.transaction_id is not None:
        raise ConflictingFields("transaction_id")
    if request.second_img is None and request.transaction_id is None:
        raise MissingField("second_img")
    return request


def _field_of(exc: EngineError, *, variant: bool) -> str | None:
    if exc.image in ("first", "second"):
        return f"{exc.image}_img"
    return "first_img" if variant else None


class FaceMatchService:
    """Face match (both API versions), built once at start-up."""

    def __init__(
        self,
        *,
        matcher: Matcher,
        vault: Vault,
        sessions: Callable[[], Session],
        max_image_bytes: int,
    ) -> None:
        self.matcher = matcher
        self.vault = vault
        self.sessions = sessions
        self.max_image_bytes = max_image_bytes

    async def match(
        self,
        *,
        token: TokenRef,
        body: Mapping[str, Any],
        wrapped: bool,
        pool: BoundPool,
        call: CallRecord,
        request_id: str = "-",
    ) -> MatchOutcome:
        """Run one face-match call (module docstring); raises the service's and the
        engine's errors, with ``call`` telling what the call has cost."""
        opened = await anyio.to_thread.run_sync(self._open, token, body, wrapped, call)
        start = time.perf_counter()
        try:
            result = await self._run(opened, pool)
        except Exception as exc:
            ms = (time.perf_counter() - start) * 1000.0
            await anyio.to_thread.run_sync(self._record_error, opened, exc, ms, request_id)
            if isinstance(exc, EngineError):
                _name_field(exc, variant=opened.reference is not None)
                raise
            if isinstance(exc, ServiceError):
                raise
            # A bug, not the client's fault: answered as the documented 500 with the
            # transaction it cost (logged above, never the images).
            raise InternalError() from exc
        ms = (time.perf_counter() - start) * 1000.0
        confidence = reported_confidence(result.confidence)
        await anyio.to_thread.run_sync(self._record_success, opened, result, confidence, ms)
        logger.info(
            "face match",
            extra={
                "transaction_id": opened.transaction_id,
                "is_similar": bool(result.is_similar),
                "processing_ms": round(ms, 1),
            },
        )
        return MatchOutcome(
            transaction_id=opened.transaction_id,
            is_similar=bool(result.is_similar),
            confidence=confidence,
            trials_remaining=opened.trials_remaining,
            hmac_secret=opened.hmac_secret,
        )

    # --- steps 1 and 2: check, then open ---------------------------------------------

    def _open(
        self, token: TokenRef, body: Mapping[str, Any], wrapped: bool, call: CallRecord
    ) -> _Opened:
        transaction_id = new_transaction_id()
        with self.sessions() as session:
            checked: _Checked | ServiceError | None = None
            # A token already used up or expired is refused below without the work.
            if token.trials_remaining > 0 and token.expires_at > utcnow():
                try:
                    checked = self._check(session, token, body, wrapped, transaction_id)
                except ServiceError as exc:
                    checked = exc
            # The first write: the trial. Nothing is locked before this point.
            remaining = repository.consume_trial(session, token_id=token.id, now=utcnow())
            if remaining is None:
                session.rollback()
                raise self._token_refusal(session, token, call)
            call.trials_remaining = remaining
            if not isinstance(checked, _Checked):
                session.commit()  # the trial is spent on a refused call too
                raise checked or InternalError("trial taken from a token seen used up")
            if checked.reference_id is not None and checked.reference is None:
                self._record_missing_reference(session, transaction_id, token, checked.bundle)
                call.transaction_id = transaction_id
                raise ReferenceNotFound(field="transaction_id")
            repository.create_transaction(
                session,
                token=token,
                bundle_id=checked.bundle.id,
                service=FACE_MATCH,
                transaction_id=transaction_id,
                reference_transaction_id=(
                    checked.reference.transaction_id if checked.reference else None
                ),
            )
            if checked.sealed:
                session.add_all(checked.sealed)
                session.flush()
            secret = checked.hmac_secret
            if secret is None:
                # A bundle made before secrets came with bundles: it gets one in this
                # commit, so the response path never writes.
                secret = ensure_bundle_hmac_secret(session, self.vault, checked.bundle)
            if not self._take_quota(session, checked.bundle):
                repository.discard_transaction(session, transaction_id=transaction_id)
                session.commit()
                raise QuotaExhausted()
            session.commit()
        call.transaction_id = transaction_id
        return _Opened(transaction_id, checked.reference, checked.images, secret, remaining)

    def _check(
        self,
        session: Session,
        token: TokenRef,
        body: Mapping[str, Any],
        wrapped: bool,
        transaction_id: str,
    ) -> _Checked:
        """Step 1: everything that only reads or computes, in the order of the answers."""
        fields = request_fields(body, wrapped=wrapped)
        bundle = own_bundle(session, fields, token)
        request = parse_request(fields)
        if FACE_MATCH not in (bundle.enabled_services or []):
            raise ServiceNotEnabled()
        # A plain read: the UPDATE of the opening commit stays the authority when
        # several calls race for the last units.
        if bundle.quota_remaining is not None and bundle.quota_remaining <= 0:
            raise QuotaExhausted()
        reference = None
        if request.transaction_id is not None:
            reference = self._reference(session, request.transaction_id, token)
        images = self._decode(request.first_img, request.second_img)
        sealed: list[TransactionImage] = []
        if bundle.store_images:
            # Encrypted copies for fetch-images (docs/transactions.md), kept before the
            # engine runs so that failed calls keep their images for audit too.
            decoded = {role: data for role, data in images.items() if isinstance(data, bytes)}
            sealed = seal_transaction_images(
                self.vault, transaction_id=transaction_id, images=decoded
            )
        return _Checked(
            bundle=bundle,
            reference_id=request.transaction_id,
            reference=reference,
            images=images,
            sealed=sealed,
            hmac_secret=signing_secret(self.vault, bundle),
        )

    def _token_refusal(self, session: Session, token: TokenRef, call: CallRecord) -> ServiceError:
        row = repository.get_token(session, token_id=token.id)
        if row is None or row.revoked_at is not None:
            return TokenInvalid()
        if row.expires_at <= utcnow():
            return TokenExpired()
        call.trials_remaining = 0
        return TrialsExhausted()

    def _reference(self, session: Session, reference_id: str, token: TokenRef) -> _Reference | None:
        found = repository.find_reference_transaction(
            session, transaction_id=reference_id, organisation_id=token.organisation_id
        )
        if found is None or found.reference_embedding is None or not found.reference_model_id:
            return None
        try:
            embedding = open_reference_embedding(self.vault, found.id, found.reference_embedding)
        except VaultError as exc:
            logger.error("reference descriptor unreadable", exc_info=exc)
            raise StoredDataUnreadable() from exc
        return _Reference(found.id, found.reference_model_id, embedding)

    def _decode(self, first: str, second: str | None) -> dict[str, bytes | EngineError]:
        """Each image's bytes, decoded once for both storage and the engine. An image
        whose base64 is bad keeps its error: the call is still recorded, and the error
        is answered before the engine runs."""
        images: dict[str, bytes | EngineError] = {}
        for role, text in zip(IMAGE_ROLES, (first, second), strict=True):
            if text is None:
                continue
            try:
                images[role] = decode_base64(text, max_bytes=self.max_image_bytes)
            except EngineError as exc:
                exc.image = role
                images[role] = exc
        return images

    @staticmethod
    def _take_quota(session: Session, bundle: Bundle) -> bool:
        """One unit of the bundle's quota, as the last statement before the commit. An
        unlimited bundle is not written to at all: no row lock for others to queue on."""
        if bundle.quota_remaining is None:
            return True
        return repository.consume_quota(session, bundle_id=bundle.id)

    def _record_missing_reference(
        self, session: Session, transaction_id: str, token: TokenRef, bundle: Bundle
    ) -> None:
        repository.create_transaction(
            session,
            token=token,
            bundle_id=bundle.id,
            service=FACE_MATCH,
            transaction_id=transaction_id,
        )
        repository.finish_transaction(
            session,
            transaction_id=transaction_id,
            outcome=Outcome.ERROR,
            processing_ms=0.0,
            error_code=entry_for(ReferenceNotFound()).code,
        )
        if not self._take_quota(session, bundle):
            repository.discard_transaction(session, transaction_id=transaction_id)
            session.commit()
            raise QuotaExhausted()
        session.commit()

    # --- step 3: run ------------------------------------------------------------------

    async def _run(self, opened: _Opened, pool: BoundPool) -> MatchResult:
        reference = opened.reference
        for role in IMAGE_ROLES:
            failed = opened.images.get(role)
            if isinstance(failed, EngineError):
                raise failed
        first = _image(opened, "first")
        if reference is not None:
            if reference.model_id != self.matcher.model_id:
                raise ReferenceModelMismatch(field="transaction_id")
            embedding = np.frombuffer(reference.embedding, dtype=np.float32)
            return await pool.run(
                self.matcher.match_reference, first, embedding, reference.model_id
            )
        return await pool.run(self.matcher.match, first, _image(opened, "second"))

    # --- step 4: finish ---------------------------------------------------------------

    def _record_error(
        self, opened: _Opened, exc: Exception, elapsed_ms: float, request_id: str
    ) -> None:
        known = isinstance(exc, ServiceError | EngineError)
        entry = entry_for(exc if known else InternalError())
        if not known or (isinstance(exc, EngineError) and entry.status >= 500):
            logger.error(
                "engine fault" if known else "unexpected error in face match",
                exc_info=exc,
                extra={"request_id": request_id, "transaction_id": opened.transaction_id},
            )
        # Refused before the engine ran: no processing time.
        ms = 0.0 if isinstance(exc, ReferenceModelMismatch | Overloaded) else elapsed_ms
        code = entry.code
        self._finish(
            opened.transaction_id, outcome=Outcome.ERROR, processing_ms=ms, error_code=code
        )

    def _record_success(
        self, opened: _Opened, result: MatchResult, confidence: float, elapsed_ms: float
    ) -> None:
        reference = opened.reference
        model_id: str | None
        embedding: bytes | None
        if reference is not None:
            model_id, embedding = reference.model_id, reference.embedding
        elif result.second is not None:
            model_id = result.second.model_id or result.model_id
            embedding = np.asarray(result.second.embedding, dtype=np.float32).tobytes()
        else:
            model_id, embedding = None, None
        if embedding is not None:
            embedding = seal_reference_embedding(self.vault, opened.transaction_id, embedding)
        self._finish(
            opened.transaction_id,
            outcome=Outcome.SUCCESS,
            processing_ms=elapsed_ms,
            is_similar=bool(result.is_similar),
            confidence=confidence,
            distance=float(result.distance),
            first_box=result.first.box_px.as_dict() if result.first is not None else None,
            second_box=result.second.box_px.as_dict() if result.second is not None else None,
            reference_model_id=model_id,
            reference_embedding=embedding,
        )

    def _finish(self, transaction_id: str, **outcome: Any) -> None:
        with self.sessions() as session:
            recorded = repository.finish_transaction(
                session, transaction_id=transaction_id, **outcome
            )
            session.commit()
        if not recorded:
            # Only a call that outlived its deadline by the whole grace period gets here.
            logger.warning(
                "outcome not recorded: the transaction was already closed as abandoned",
                extra={"transaction_id": transaction_id},
            )


def _image(opened: _Opened, role: str) -> bytes:
    image = opened.images[role]
    if not isinstance(image, bytes):
        raise image
    return image


def _name_field(exc: EngineError, *, variant: bool) -> None:
    """Tell the error answer which request field the engine's error is about."""
    exc.field = _field_of(exc, variant=variant)  # type: ignore[attr-defined]
