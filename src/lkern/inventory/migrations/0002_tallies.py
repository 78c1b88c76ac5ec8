"""boxes keep their pieces (quantity) and a tally keeps the live parts, for the metrics

Revision ID: 3c1f0b7a9d24
Revises: eab86a5b7e3f
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c1f0b7a9d24"
down_revision: str | None = "eab86a5b7e3f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("boxes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quantity", sa.Integer(), server_default="0", nullable=False))
    op.execute(
        "UPDATE boxes SET quantity = COALESCE((SELECT sum(quantity) FROM locations "
        "WHERE locations.box_no = boxes.box_no), 0)"
    )
    op.create_table(
        "tallies",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_tallies")),
    )
    op.execute(
        "INSERT INTO tallies (name, value) SELECT 'parts', count(*) FROM parts "
        "WHERE deleted_at IS NULL AND deletion_audit_id IS NULL"
    )


def downgrade() -> None:
    op.drop_table("tallies")
    with op.batch_alter_table("boxes", schema=None) as batch_op:
        batch_op.drop_column("quantity")
