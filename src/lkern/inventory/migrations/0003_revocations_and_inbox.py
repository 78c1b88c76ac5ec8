"""inventory takes the revocations and inbox tables: it consumes user changes

Revision ID: 8c5e1f37a9b2
Revises: 3c1f0b7a9d24
"""

from collections.abc import Sequence

revision: str = "8c5e1f37a9b2"
down_revision: str | None = "3c1f0b7a9d24"
branch_labels: str | Sequence[str] | None = None
# The platform's tables this service takes from here on; they come with their branches.
depends_on: str | Sequence[str] | None = ("platform_revocations", "platform_inbox")


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
