"""Transactions record the key their reference descriptor is sealed under.

Key usage and key rotation then select and count by this column, as they do
for images, instead of reading and parsing every sealed descriptor. Existing
descriptors get the key id from their sealed header, in batches.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from facematch.store.vault import key_id_of

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BACKFILL_BATCH = 500


def upgrade() -> None:
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reference_key_id", sa.String(length=100), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_transactions_reference_key_id"), ["reference_key_id"], unique=False
        )
    transactions = sa.table(
        "transactions",
        sa.column("id", sa.String),
        sa.column("reference_embedding", sa.LargeBinary),
        sa.column("reference_key_id", sa.String),
    )
    connection = op.get_bind()
    last_id = ""
    while True:
        rows = connection.execute(
            sa.select(transactions.c.id, transactions.c.reference_embedding)
            .where(
                transactions.c.reference_embedding.is_not(None),
                transactions.c.id > last_id,
            )
            .order_by(transactions.c.id)
            .limit(BACKFILL_BATCH)
        ).all()
        if not rows:
            break
        for row in rows:
            connection.execute(
                sa.update(transactions)
                .where(transactions.c.id == row.id)
                .values(reference_key_id=key_id_of(row.reference_embedding))
            )
        last_id = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transactions_reference_key_id"))
        batch_op.drop_column("reference_key_id")
