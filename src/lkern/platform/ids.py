"""Time-ordered primary keys (UUIDv7): they index well and sort by creation."""

from __future__ import annotations

import uuid

from uuid_utils.compat import uuid7


def new_id() -> uuid.UUID:
    return uuid7()
