"""issues and their attachments column, with trigram indexes for search on PostgreSQL

Revision ID: a3d5e5f3116a
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from lkern.platform.trigram import create_trigram_indexes, drop_trigram_indexes

SEARCHED_COLUMNS = ("code", "title", "description")

revision: str = "a3d5e5f3116a"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("issues",)
depends_on: str | Sequence[str] | None = [
    "platform_outbox",
    "platform_deletion_audits",
    "platform_code_counters",
]


def upgrade() -> None:
    op.create_table(
        "issues",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("reporter_id", sa.Uuid(), nullable=False),
        sa.Column("assignee_id", sa.Uuid(), nullable=True),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column(
            "attachments",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deletion_audit_id", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "priority IN ('low', 'medium', 'high', 'critical')",
            name=op.f("ck_issues_priority_valid"),
        ),
        sa.CheckConstraint(
            "status IN ('open', 'in_progress', 'resolved', 'closed', 'rejected')",
            name=op.f("ck_issues_status_valid"),
        ),
        sa.CheckConstraint(
            "type IN ('bug', 'feature', 'improvement', 'task')", name=op.f("ck_issues_type_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issues")),
        sa.UniqueConstraint("code", name=op.f("uq_issues_code")),
    )
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issues_assignee_id"), ["assignee_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_issues_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_issues_deleted_at"), ["deleted_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_issues_priority"), ["priority"], unique=False)
        batch_op.create_index(batch_op.f("ix_issues_reporter_id"), ["reporter_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_issues_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_issues_type"), ["type"], unique=False)
    create_trigram_indexes("issues", SEARCHED_COLUMNS)


def downgrade() -> None:
    drop_trigram_indexes("issues", SEARCHED_COLUMNS)
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issues_type"))
        batch_op.drop_index(batch_op.f("ix_issues_status"))
        batch_op.drop_index(batch_op.f("ix_issues_reporter_id"))
        batch_op.drop_index(batch_op.f("ix_issues_priority"))
        batch_op.drop_index(batch_op.f("ix_issues_deleted_at"))
        batch_op.drop_index(batch_op.f("ix_issues_contact_id"))
        batch_op.drop_index(batch_op.f("ix_issues_assignee_id"))

    op.drop_table("issues")
