"""deletion audits

Revision ID: 7f0c5a9d3e64
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7f0c5a9d3e64"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("platform_deletion_audits",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deletion_audits",
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("item_code", sa.String(length=64), nullable=True),
        sa.Column("item_type", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("files_found", sa.Integer(), nullable=False),
        sa.Column("files_deleted", sa.Integer(), nullable=False),
        sa.Column("files_failed", sa.Integer(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("last_retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_by", sa.String(length=255), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'completed', 'failed', 'partial')",
            name=op.f("ck_deletion_audits_status_valid"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deletion_audits")),
    )
    with op.batch_alter_table("deletion_audits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deletion_audits_item_id"), ["item_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_deletion_audits_started_at"), ["started_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_deletion_audits_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deletion_audits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deletion_audits_status"))
        batch_op.drop_index(batch_op.f("ix_deletion_audits_started_at"))
        batch_op.drop_index(batch_op.f("ix_deletion_audits_item_id"))

    op.drop_table("deletion_audits")
