"""code counters

Revision ID: 2c6e8b4f1a95
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2c6e8b4f1a95"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("platform_code_counters",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "code_counters",
        sa.Column("prefix", sa.String(length=8), nullable=False),
        sa.Column("period", sa.String(length=4), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("prefix", "period", name=op.f("pk_code_counters")),
    )


def downgrade() -> None:
    op.drop_table("code_counters")
