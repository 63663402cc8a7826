"""Retention: purge biometric data of transactions older than their bundle allows.

Purging deletes the encrypted images and the stored reference embedding (a face
descriptor is biometric data too) and stamps ``images_purged_at``; the rest of
the transaction row stays for audit. Each bundle has its own period
(``Bundle.retention_days``), so the purge runs bundle by bundle with plain
datetime comparisons that behave the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

from facematch.store.models import Bundle, Transaction, TransactionImage, utcnow


@dataclass(frozen=True)
class PurgeReport:
    """What one purge did (or, for a dry run, would do)."""

    transactions: int
    images: int


def _due(bundle: Bundle, now: datetime) -> Select[tuple[str]]:
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
        due_count = session.scalar(select(func.count()).select_from(due.subquery())) or 0
        if not due_count:
            continue
        image_count = (
            session.scalar(
                select(func.count())
                .select_from(TransactionImage)
                .where(TransactionImage.transaction_id.in_(due))
            )
            or 0
        )
        transactions += due_count
        images += image_count
        if dry_run:
            continue
        session.execute(
            delete(TransactionImage).where(TransactionImage.transaction_id.in_(due)),
            execution_options={"synchronize_session": False},
        )
        session.execute(
            update(Transaction)
            .where(Transaction.id.in_(due))
            .values(images_purged_at=now, reference_embedding=None, reference_key_id=None),
            execution_options={"synchronize_session": False},
        )
    return PurgeReport(transactions=transactions, images=images)
