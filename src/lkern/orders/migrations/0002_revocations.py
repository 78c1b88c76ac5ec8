"""orders takes the revocations table: it consumes user changes

Revision ID: 2d6f0a48b1c3
Revises: 44c1dbf8dd42
"""

from collections.abc import Sequence

revision: str = "2d6f0a48b1c3"
down_revision: str | None = "44c1dbf8dd42"
branch_labels: str | Sequence[str] | None = None
# The platform's tables this service takes from here on; they come with their branches.
depends_on: str | Sequence[str] | None = ("platform_revocations",)


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
