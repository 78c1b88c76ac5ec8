"""contacts takes the revocations and inbox tables: it consumes user changes

Revision ID: 6a2d8e15f3c9
Revises: 5d1e7c2a9b40
"""

from collections.abc import Sequence

revision: str = "6a2d8e15f3c9"
down_revision: str | None = "5d1e7c2a9b40"
branch_labels: str | Sequence[str] | None = None
# The platform's tables this service takes from here on; they come with their branches.
depends_on: str | Sequence[str] | None = ("platform_revocations", "platform_inbox")


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
