"""the cleanup worker's lease and backoff on deletion audits

Revision ID: 41023db3c969
Revises: 7f0c5a9d3e64
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "41023db3c969"
down_revision: str | None = "7f0c5a9d3e64"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deletion_audits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_retry_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_deletion_audits_next_retry_at"), ["next_retry_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("deletion_audits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deletion_audits_next_retry_at"))
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("next_retry_at")
