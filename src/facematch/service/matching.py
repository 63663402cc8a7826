"""The face-match service: validate the fields, record the transaction, run the
engine, record the outcome. Routes call :func:`run_face_match`; it owns the
database transactions.

One call, step by step (the token's trial was already taken by ``CurrentToken``):

1. fields validated (400, no transaction);
2. bundle enabled for face match (401) and quota left (429, a plain read);
3. variant with ``transaction_id``: the reference transaction is looked up in
   the caller's organisation (422 ``reference_not_found`` otherwise; a purged
   transaction is never a reference);
4. the images are decoded and sealed before the first write (no lock held); then
   the ``pending`` row and its images are inserted and one unit of quota is
   taken last (no lock at all for an unlimited bundle) — committed together;
5. the engine runs on the bounded work pool (429 when full);
6. the row gets its outcome: ``success`` with score, boxes and the reference
   descriptor, or ``error`` with the catalogue code. A call that dies before
   this stays ``pending`` until the housekeeping sweep closes it as
   ``abandoned`` (docs/transactions.md).

The reference face is the ID-document side, ``second_img``: its 128-d
descriptor (float32 bytes, encrypted under the image keys: it is biometric
data) and the model id are stored with a successful transaction; a
reference-variant transaction copies its reference on (re-encrypted for its
own row), so chains of re-verifications keep working.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from facematch.engine.errors import EngineError
from facematch.engine.images import Base64Image
from facematch.service.auth import AuthContext
from facematch.service.errors import CATALOGUE, ApiError, ErrorEntry, entry_for_engine_error
from facematch.service.schemas import FaceMatchRequest, FaceMatchResponse, FaceMatchResult
from facematch.service.transactions import PreparedImages, prepare_images
from facematch.service.workpool import BoundPool, DeadlineExceeded, Overloaded
from facematch.store import repository
from facematch.store.models import (
    ERROR,
    FACE_MATCH,
    SUCCESS,
    Bundle,
    Transaction,
    new_transaction_id,
)
from facematch.store.sealed import open_reference_embedding, seal_reference_embedding
from facematch.store.vault import Vault, VaultError

if TYPE_CHECKING:
    from facematch.engine.matcher import FaceMatcher
    from facematch.engine.types import MatchResult

logger = logging.getLogger(__name__)

CONFIDENCE_DECIMALS = 4


@dataclass(frozen=True)
class Reference:
    transaction_id: str
    model_id: str
    embedding: bytes


def _reported_confidence(confidence: float) -> float:
    """Rounded to 4 decimals and kept inside (0, 1): a calibrated probability is never
    certain, and 0 or 1 would serialize as JSON integers."""
    step = 10.0**-CONFIDENCE_DECIMALS
    return min(max(round(float(confidence), CONFIDENCE_DECIMALS), step), 1.0 - step)


def parse_fields(fields: dict[str, Any], auth: AuthContext) -> FaceMatchRequest:
    """Validate the request fields into the schema, mapping failures to the catalogue."""

    def fail(name: str, field: str) -> ApiError:
        return ApiError(name, lang=auth.lang, field=field, trials_remaining=auth.trials_remaining)

    # lang was already checked (case-insensitively) by the body dependency.
    candidate = {key: value for key, value in fields.items() if key != "lang"}
    try:
        request = FaceMatchRequest.model_validate(candidate)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "body"
        raise fail(
            "missing_field" if first["type"] == "missing" else "invalid_field", field
        ) from exc
    if request.second_img is not None and request.transaction_id is not None:
        raise fail("conflicting_fields", "transaction_id")
    if request.second_img is None and request.transaction_id is None:
        raise fail("missing_field", "second_img")
    return request


def _quota_left(bundle: Bundle) -> bool:
    # The bundle as authentication read it for this request: a plain read, no lock.
    return bundle.quota_remaining is None or bundle.quota_remaining > 0


def _take_quota(session: Session, *, auth: AuthContext, bundle: Bundle) -> None:
    """One unit of the bundle's quota, or 429. An unlimited bundle is not written to at
    all: no UPDATE, so no row lock that concurrent calls would queue on."""
    if bundle.quota_remaining is None:
        return
    if not repository.consume_quota(session, bundle_id=bundle.id):
        session.rollback()
        raise ApiError("quota_exhausted", lang=auth.lang, trials_remaining=auth.trials_remaining)


def _open_transaction(
    session: Session,
    *,
    auth: AuthContext,
    bundle: Bundle,
    reference_id: str | None,
    vault: Vault,
    prepare_images: Callable[[str], PreparedImages] | None = None,
) -> tuple[Transaction, Reference | None, dict[str, bytes]]:
    """The pending row, its encrypted images (``prepare_images``) and one unit of quota,
    in one commit: no row without its images, so a purge sees both or neither.

    The heavy work comes before the quota: the images are decoded and sealed before
    the first write, then inserted, and only then is the quota taken, as the last
    statement before the commit. The bundle's row lock (PostgreSQL) is
    held for that UPDATE and the commit only, not for 10 MB of images; on SQLite
    the insert itself still holds the database's single write lock
    (docs/performance.md). Returns the row, the reference and the decoded images.
    """
    if FACE_MATCH not in (bundle.enabled_services or []):
        raise ApiError(
            "service_not_enabled", lang=auth.lang, trials_remaining=auth.trials_remaining
        )
    # An exhausted bundle is refused before any heavy work; the UPDATE in
    # _take_quota stays the authority when several calls race for the last units.
    if not _quota_left(bundle):
        session.rollback()
        raise ApiError("quota_exhausted", lang=auth.lang, trials_remaining=auth.trials_remaining)
    transaction_id = new_transaction_id()
    reference = None
    if reference_id is not None:
        found = repository.find_reference_transaction(
            session, transaction_id=reference_id, organisation_id=auth.token.organisation_id
        )
        if found is None or found.reference_embedding is None or not found.reference_model_id:
            repository.create_transaction(
                session,
                token=auth.token,
                bundle_id=bundle.id,
                service=FACE_MATCH,
                transaction_id=transaction_id,
            )
            repository.finish_transaction(
                session,
                transaction_id=transaction_id,
                outcome=ERROR,
                processing_ms=0.0,
                error_code=CATALOGUE["reference_not_found"].code,
            )
            _take_quota(session, auth=auth, bundle=bundle)
            session.commit()
            raise ApiError(
                "reference_not_found",
                lang=auth.lang,
                field="transaction_id",
                transaction_id=transaction_id,
                trials_remaining=auth.trials_remaining,
            )
        try:
            embedding = open_reference_embedding(vault, found.id, found.reference_embedding)
        except VaultError as exc:
            logger.error("reference descriptor unreadable", exc_info=exc)
            raise ApiError(
                "stored_data_unreadable", lang=auth.lang, trials_remaining=auth.trials_remaining
            ) from exc
        reference = Reference(found.id, found.reference_model_id, embedding)
    # Nothing is locked yet (reads take no row locks): the images are decoded and
    # sealed before the first write.
    prepared = prepare_images(transaction_id) if prepare_images is not None else None
    transaction = repository.create_transaction(
        session,
        token=auth.token,
        bundle_id=bundle.id,
        service=FACE_MATCH,
        transaction_id=transaction_id,
        reference_transaction_id=reference.transaction_id if reference is not None else None,
    )
    if prepared is not None and prepared.rows:
        session.add_all(prepared.rows)
        session.flush()
    _take_quota(session, auth=auth, bundle=bundle)
    session.commit()
    return transaction, reference, prepared.decoded if prepared is not None else {}


def _record_error(
    session: Session, *, transaction_id: str, entry: ErrorEntry, processing_ms: float
) -> None:
    recorded = repository.finish_transaction(
        session,
        transaction_id=transaction_id,
        outcome=ERROR,
        processing_ms=processing_ms,
        error_code=entry.code,
    )
    session.commit()
    if not recorded:
        _log_not_pending(transaction_id)


def _record_success(
    session: Session,
    *,
    vault: Vault,
    transaction_id: str,
    result: MatchResult,
    confidence: float,
    reference: Reference | None,
    processing_ms: float,
) -> None:
    if reference is not None:
        model_id, embedding = reference.model_id, reference.embedding
    elif result.second is not None:
        model_id = result.second.model_id or result.model_id
        embedding = np.asarray(result.second.embedding, dtype=np.float32).tobytes()
    else:
        model_id, embedding = None, None
    if embedding is not None:
        embedding = seal_reference_embedding(vault, transaction_id, embedding)
    recorded = repository.finish_transaction(
        session,
        transaction_id=transaction_id,
        outcome=SUCCESS,
        processing_ms=processing_ms,
        is_similar=bool(result.is_similar),
        confidence=confidence,
        distance=float(result.distance),
        first_box=result.first.box_px.as_dict() if result.first is not None else None,
        second_box=result.second.box_px.as_dict() if result.second is not None else None,
        reference_model_id=model_id,
        reference_embedding=embedding,
    )
    session.commit()
    if not recorded:
        _log_not_pending(transaction_id)


def _log_not_pending(transaction_id: str) -> None:
    # Only a call that outlived its deadline by the whole grace period gets here.
    logger.warning(
        "outcome not recorded: the transaction was already closed as abandoned",
        extra={"transaction_id": transaction_id},
    )


def _field_of(exc: EngineError, *, variant: bool) -> str | None:
    if exc.image in ("first", "second"):
        return f"{exc.image}_img"
    return "first_img" if variant else None


async def run_face_match(
    *,
    session: Session,
    auth: AuthContext,
    bundle: Bundle,
    fields: dict[str, Any],
    matcher: FaceMatcher,
    pool: BoundPool,
    request_id: str,
    vault: Vault,
    max_image_bytes: int = 5 * 1024 * 1024,
) -> FaceMatchResponse:
    request = parse_fields(fields, auth)

    def prepare(transaction_id: str) -> PreparedImages:
        # Encrypted copies for fetch-images (docs/transactions.md), kept before the
        # engine runs so that failed calls keep their images for audit too.
        return prepare_images(
            vault,
            transaction_id=transaction_id,
            bundle=bundle,
            images={"first": request.first_img, "second": request.second_img},
            max_bytes=max_image_bytes,
        )

    transaction, reference, stored = await run_in_threadpool(
        lambda: _open_transaction(
            session,
            auth=auth,
            bundle=bundle,
            reference_id=request.transaction_id,
            vault=vault,
            prepare_images=prepare,
        )
    )

    def fail(entry: ErrorEntry, *, field: str | None = None, **extra: Any) -> ApiError:
        return ApiError(
            entry,
            lang=auth.lang,
            field=field,
            transaction_id=transaction.id,
            trials_remaining=auth.trials_remaining,
            **extra,
        )

    # The bytes decoded for storage go to the engine as they are (base64 of a
    # 5 MiB image takes ~25 ms to decode); an image that was not stored or did not
    # decode goes in as its text, so the engine decodes it and names it in its error
    # (wrapped: a plain str would be a file path to the engine).
    first: bytes | Base64Image = stored.get("first") or Base64Image(request.first_img)
    second: bytes | Base64Image | None = stored.get("second") or (
        Base64Image(request.second_img) if request.second_img is not None else None
    )
    start = time.perf_counter()

    def elapsed_ms() -> float:
        return (time.perf_counter() - start) * 1000.0

    try:
        if reference is not None:
            if reference.model_id != matcher.model_id:
                raise fail(CATALOGUE["reference_model_mismatch"], field="transaction_id")
            embedding = np.frombuffer(reference.embedding, dtype=np.float32)
            result = await pool.run(matcher.match_reference, first, embedding, reference.model_id)
        else:
            result = await pool.run(matcher.match, first, second)
    except ApiError as exc:
        refused = exc.entry
        await run_in_threadpool(
            lambda: _record_error(
                session, transaction_id=transaction.id, entry=refused, processing_ms=0.0
            )
        )
        raise
    except Overloaded as exc:
        entry = CATALOGUE["overloaded"]
        await run_in_threadpool(
            lambda: _record_error(
                session, transaction_id=transaction.id, entry=entry, processing_ms=0.0
            )
        )
        raise fail(entry, headers={"Retry-After": str(exc.retry_after_s)}) from exc
    except DeadlineExceeded as exc:
        entry = CATALOGUE["request_timeout"]
        ms = elapsed_ms()
        await run_in_threadpool(
            lambda: _record_error(
                session, transaction_id=transaction.id, entry=entry, processing_ms=ms
            )
        )
        raise fail(entry) from exc
    except EngineError as exc:
        entry = entry_for_engine_error(exc)
        ms = elapsed_ms()
        await run_in_threadpool(
            lambda: _record_error(
                session, transaction_id=transaction.id, entry=entry, processing_ms=ms
            )
        )
        if entry.status >= 500:
            logger.error(
                "engine fault",
                exc_info=exc,
                extra={"request_id": request_id, "transaction_id": transaction.id},
            )
        raise fail(entry, field=_field_of(exc, variant=reference is not None)) from exc
    except Exception as exc:
        # A bug, not the client's fault: log it (never the images) and answer the
        # documented 500 with the transaction it cost.
        entry = CATALOGUE["internal_error"]
        ms = elapsed_ms()
        logger.error(
            "unexpected error in face match",
            exc_info=exc,
            extra={"request_id": request_id, "transaction_id": transaction.id},
        )
        await run_in_threadpool(
            lambda: _record_error(
                session, transaction_id=transaction.id, entry=entry, processing_ms=ms
            )
        )
        raise fail(entry) from exc

    ms = elapsed_ms()
    confidence = _reported_confidence(result.confidence)
    await run_in_threadpool(
        lambda: _record_success(
            session,
            vault=vault,
            transaction_id=transaction.id,
            result=result,
            confidence=confidence,
            reference=reference,
            processing_ms=ms,
        )
    )
    logger.info(
        "face match",
        extra={
            "transaction_id": transaction.id,
            "is_similar": bool(result.is_similar),
            "processing_ms": round(ms, 1),
        },
    )
    return FaceMatchResponse(
        result=FaceMatchResult(is_similar=bool(result.is_similar), confidence=confidence),
        transaction_id=transaction.id,
        trials_remaining=auth.trials_remaining,
    )
