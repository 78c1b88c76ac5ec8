"""issues attachments and platform tables

Revision ID: 8358adb78e2a
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "8358adb78e2a"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "code_counters",
        sa.Column("prefix", sa.String(length=8), nullable=False),
        sa.Column("period", sa.String(length=4), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("prefix", "period", name=op.f("pk_code_counters")),
    )
    op.create_table(
        "dead_letters",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("consumer_group", sa.String(length=128), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=255), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint(
            "event_id", "consumer_group", name=op.f("uq_dead_letters_event_id_consumer_group")
        ),
    )
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dead_letters_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_dead_letters_topic"), ["topic"], unique=False)

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
        sa.Column("next_retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
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
            batch_op.f("ix_deletion_audits_next_retry_at"), ["next_retry_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_deletion_audits_started_at"), ["started_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_deletion_audits_status"), ["status"], unique=False)

    op.create_table(
        "outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_pending",
            ["key", "seq"],
            unique=False,
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )
        batch_op.create_index(batch_op.f("ix_outbox_published_at"), ["published_at"], unique=False)

    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("consumer_group", sa.String(length=128), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "consumer_group", name=op.f("pk_processed_events")),
    )
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

    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for column in ("code", "title", "description"):
            op.create_index(
                f"ix_issues_{column}_trgm",
                "issues",
                [column],
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for column in ("code", "title", "description"):
            op.drop_index(f"ix_issues_{column}_trgm", table_name="issues")
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issues_type"))
        batch_op.drop_index(batch_op.f("ix_issues_status"))
        batch_op.drop_index(batch_op.f("ix_issues_reporter_id"))
        batch_op.drop_index(batch_op.f("ix_issues_priority"))
        batch_op.drop_index(batch_op.f("ix_issues_deleted_at"))
        batch_op.drop_index(batch_op.f("ix_issues_contact_id"))
        batch_op.drop_index(batch_op.f("ix_issues_assignee_id"))

    op.drop_table("issues")
    op.drop_table("processed_events")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_published_at"))
        batch_op.drop_index(
            "ix_outbox_pending",
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )

    op.drop_table("outbox")
    with op.batch_alter_table("deletion_audits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deletion_audits_status"))
        batch_op.drop_index(batch_op.f("ix_deletion_audits_started_at"))
        batch_op.drop_index(batch_op.f("ix_deletion_audits_next_retry_at"))
        batch_op.drop_index(batch_op.f("ix_deletion_audits_item_id"))

    op.drop_table("deletion_audits")
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dead_letters_topic"))
        batch_op.drop_index(batch_op.f("ix_dead_letters_status"))

    op.drop_table("dead_letters")
    op.drop_table("code_counters")
