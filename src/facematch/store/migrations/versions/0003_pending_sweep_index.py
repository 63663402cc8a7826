"""An index for the sweep of stale ``pending`` transactions.

The housekeeping task closes calls that died mid-way (``pending`` past their
deadline plus a grace period) as ``abandoned``. With this index it reads only
those rows, however many finished transactions the table holds. The new outcome
value itself needs no schema change (``outcome`` is a plain string column).

It also repairs what the retention race (issue 10, defect 3) may have left: a
call in flight during a purge could write its reference descriptor back onto the
purged row. Purged rows lose any descriptor, and any image, they still hold.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_transactions_outcome_created_at", ["outcome", "created_at"], unique=False
        )
    transactions = sa.table(
        "transactions",
        sa.column("id", sa.String),
        sa.column("images_purged_at", sa.DateTime),
        sa.column("reference_embedding", sa.LargeBinary),
        sa.column("reference_key_id", sa.String),
        sa.column("reference_model_id", sa.String),
    )
    images = sa.table("transaction_images", sa.column("transaction_id", sa.String))
    purged = transactions.c.images_purged_at.is_not(None)
    op.execute(
        sa.update(transactions)
        .where(purged, transactions.c.reference_embedding.is_not(None))
        .values(reference_embedding=None, reference_key_id=None)
    )
    op.execute(
        sa.delete(images).where(
            images.c.transaction_id.in_(sa.select(transactions.c.id).where(purged))
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_transactions_outcome_created_at")
