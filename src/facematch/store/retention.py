"""Retention: purge biometric data of transactions older than their bundle allows,
and close transactions left ``pending`` by calls that died.

Purging deletes the encrypted images and the stored reference embedding (a face
descriptor is biometric data too) and stamps ``images_purged_at``; the rest of
the transaction row stays for audit. Each bundle has its own period
(``Bundle.retention_days``), so the purge runs bundle by bundle with plain
datetime comparisons that behave the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Result, Select, delete, func, select, update
from sqlalchemy.orm import Session

from facematch.store.models import (
    ABANDONED,
    PENDING,
    Bundle,
    Transaction,
    TransactionImage,
    utcnow,
)

# Ids per DELETE statement (keeps the IN list well inside every driver's limits).
_DELETE_CHUNK = 500


@dataclass(frozen=True)
class PurgeReport:
    """What one purge did (or, for a dry run, would do)."""

    transactions: int
    images: int


def _rowcount(result: Result[Any]) -> int:
    # An UPDATE/DELETE answers a CursorResult, which has the row count.
    return int(getattr(result, "rowcount", 0) or 0)


def _due(bundle: Bundle, now: datetime) -> Select[Any]:
    """Ids of the bundle's transactions whose biometric data is past retention."""
    cutoff = now - timedelta(days=bundle.retention_days)
    return (
        select(Transaction.id)
        .where(Transaction.bundle_id == bundle.id)
        .where(Transaction.created_at < cutoff)
        .where(Transaction.images_purged_at.is_(None))
    )


def purge_expired(
    session: Session, *, now: datetime | None = None, dry_run: bool = False
) -> PurgeReport:
    """Purge every transaction past its bundle's retention period; the caller commits."""
    now = now or utcnow()
    transactions = images = 0
    for bundle in session.scalars(select(Bundle).order_by(Bundle.id)).all():
        due = _due(bundle, now)
        if dry_run:
            due_count = session.scalar(select(func.count()).select_from(due.subquery())) or 0
            transactions += due_count
            images += _image_count(session, due) if due_count else 0
            continue
        # Mark the rows first, then delete the images of exactly the rows marked. A
        # row and its images are committed together (service/application/face_match.py), so an
        # image of a row this UPDATE saw is visible to the DELETE after it; the
        # other order could miss the images of a row committed in between.
        purged = session.scalars(
            update(Transaction)
            .where(Transaction.id.in_(due))
            .values(images_purged_at=now, reference_embedding=None, reference_key_id=None)
            .returning(Transaction.id),
            execution_options={"synchronize_session": False},
        ).all()
        transactions += len(purged)
        for start in range(0, len(purged), _DELETE_CHUNK):
            chunk = purged[start : start + _DELETE_CHUNK]
            deleted = session.execute(
                delete(TransactionImage).where(TransactionImage.transaction_id.in_(chunk)),
                execution_options={"synchronize_session": False},
            )
            images += _rowcount(deleted)
    return PurgeReport(transactions=transactions, images=images)


def _image_count(session: Session, due: Select[tuple[str]]) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(TransactionImage)
            .where(TransactionImage.transaction_id.in_(due))
        )
        or 0
    )


def abandon_stale_pending(session: Session, *, older_than: datetime) -> int:
    """Close every ``pending`` transaction created before ``older_than`` as ``abandoned``.

    A call records its outcome before it answers, so a row still pending well past
    the request deadline belongs to a call that died (worker killed, request cut
    off, database lost mid-way). Its trial and quota unit stay spent, like any
    transaction's. The conditional finish (``repository.finish_transaction``)
    never overwrites the result. How many rows were closed; the caller commits.
    """
    result = session.execute(
        update(Transaction)
        .where(Transaction.outcome == PENDING, Transaction.created_at < older_than)
        .values(outcome=ABANDONED),
        execution_options={"synchronize_session": False},
    )
    return _rowcount(result)
