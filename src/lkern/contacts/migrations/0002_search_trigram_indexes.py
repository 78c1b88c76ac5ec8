"""trigram indexes for contact search (PostgreSQL)

Revision ID: 5d1e7c2a9b40
Revises: af63261e8ab1
"""

from collections.abc import Sequence

from lkern.contacts.models import SEARCHED_COLUMNS
from lkern.platform.trigram import create_trigram_indexes, drop_trigram_indexes

revision: str = "5d1e7c2a9b40"
down_revision: str | None = "af63261e8ab1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_trigram_indexes("contacts", SEARCHED_COLUMNS)


def downgrade() -> None:
    drop_trigram_indexes("contacts", SEARCHED_COLUMNS)
