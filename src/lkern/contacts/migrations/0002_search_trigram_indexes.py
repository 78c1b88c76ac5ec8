"""trigram indexes for contact search (PostgreSQL)

Revision ID: 5d1e7c2a9b40
Revises: af63261e8ab1
"""

from collections.abc import Sequence

from alembic import op

from lkern.contacts.models import SEARCHED_COLUMNS

revision: str = "5d1e7c2a9b40"
down_revision: str | None = "af63261e8ab1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Trusted since PostgreSQL 13: the database's owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in SEARCHED_COLUMNS:
        op.create_index(
            f"ix_contacts_{column}_trgm",
            "contacts",
            [column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in SEARCHED_COLUMNS:
        op.drop_index(f"ix_contacts_{column}_trgm", table_name="contacts")
