"""issues takes the revocations and inbox tables: it consumes user changes

Revision ID: 7b4c0d26e8a1
Revises: a3d5e5f3116a
"""

from collections.abc import Sequence

revision: str = "7b4c0d26e8a1"
down_revision: str | None = "a3d5e5f3116a"
branch_labels: str | Sequence[str] | None = None
# The platform's tables this service takes from here on; they come with their branches.
depends_on: str | Sequence[str] | None = ("platform_revocations", "platform_inbox")


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
