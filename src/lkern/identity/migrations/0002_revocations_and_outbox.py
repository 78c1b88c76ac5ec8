"""identity takes the revocations and outbox tables: it publishes user changes

Revision ID: 3f1b9c04e7a2
Revises: c7de2b82a896
"""

from collections.abc import Sequence

revision: str = "3f1b9c04e7a2"
down_revision: str | None = "c7de2b82a896"
branch_labels: str | Sequence[str] | None = None
# The platform's tables this service takes from here on; they come with their branches.
depends_on: str | Sequence[str] | None = ("platform_revocations", "platform_outbox")


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
