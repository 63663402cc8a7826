"""Read models: plain, frozen values the store hands to the layers above.

They carry what a use case needs of a row and nothing more (never a hash, a
ciphertext or an embedding), and stay valid after their session is closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from facematch.store.models import AccessToken, Bundle, Transaction, TransactionImage, User


@dataclass(frozen=True)
class TokenRef:
    """An access token as found by its text: who it belongs to and until when."""

    id: int
    organisation_id: int
    user_id: int
    bundle_id: int
    expires_at: datetime
    trials_remaining: int

    @classmethod
    def of(cls, row: AccessToken) -> TokenRef:
        return cls(
            id=row.id,
            organisation_id=row.organisation_id,
            user_id=row.user_id,
            bundle_id=row.bundle_id,
            expires_at=row.expires_at,
            trials_remaining=row.trials_remaining,
        )


@dataclass(frozen=True)
class TransactionView:
    """What an inquiry may reveal of one transaction: metadata, never embeddings."""

    id: str
    service: str
    created_at: datetime
    username: str
    bundle_key_prefix: str
    outcome: str
    error_code: int | None
    is_similar: bool | None
    confidence: float | None
    distance: float | None
    first_box: dict[str, int] | None
    second_box: dict[str, int] | None
    processing_ms: float | None
    reference_transaction_id: str | None
    image_roles: tuple[str, ...]
    images_purged_at: datetime | None


def transaction_views(
    session: Session, transactions: Sequence[Transaction]
) -> list[TransactionView]:
    """The views of ``transactions``, in their order: three queries whatever their number."""
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
        TransactionView(
            id=t.id,
            service=t.service,
            created_at=t.created_at,
            username=names.get(t.user_id, ""),
            bundle_key_prefix=prefixes.get(t.bundle_id, ""),
            outcome=t.outcome,
            error_code=t.error_code,
            is_similar=t.is_similar,
            confidence=t.confidence,
            distance=t.distance,
            first_box=t.first_box,
            second_box=t.second_box,
            processing_ms=t.processing_ms,
            reference_transaction_id=t.reference_transaction_id,
            image_roles=tuple(roles[t.id]),
            images_purged_at=t.images_purged_at,
        )
        for t in transactions
    ]
