"""${name}, with trigram indexes for search on PostgreSQL

Revision ID: ${revision}
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
% if files:
from sqlalchemy.dialects import postgresql
% endif

from lkern.platform.trigram import create_trigram_indexes, drop_trigram_indexes

% if prefix:
SEARCHED_COLUMNS = ("code", "name")
% else:
SEARCHED_COLUMNS = ("name",)
% endif

revision: str = "${revision}"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("${name}",)
depends_on: str | Sequence[str] | None = [
% for branch in depends_on:
    "${branch}",
% endfor
]


def upgrade() -> None:
    op.create_table(
        "${name}",
% if prefix:
        sa.Column("code", sa.String(length=32), nullable=False),
% endif
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
% if files:
        sa.Column(
            "attachments",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
% endif
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_${name}")),
% if prefix:
        sa.UniqueConstraint("code", name=op.f("uq_${name}_code")),
% endif
    )
    with op.batch_alter_table("${name}", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_${name}_deleted_at"), ["deleted_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_${name}_is_active"), ["is_active"], unique=False)
        batch_op.create_index(batch_op.f("ix_${name}_name"), ["name"], unique=False)
    create_trigram_indexes("${name}", SEARCHED_COLUMNS)


def downgrade() -> None:
    drop_trigram_indexes("${name}", SEARCHED_COLUMNS)
    with op.batch_alter_table("${name}", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_${name}_name"))
        batch_op.drop_index(batch_op.f("ix_${name}_is_active"))
        batch_op.drop_index(batch_op.f("ix_${name}_deleted_at"))

    op.drop_table("${name}")
