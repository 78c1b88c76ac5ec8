"""Events of the identity service (lkms100)."""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import AwareDatetime, Field

from lkern.events.base import EventData, event


class UserChange(StrEnum):
    ROLE_CHANGED = "role_changed"
    DEACTIVATED = "deactivated"
    DELETED = "deleted"
    PERMANENTLY_DELETED = "permanently_deleted"


@event("lkern.identity.user_changed")
class UserChanged(EventData):
    """A change that ends the user's access tokens issued before it (§9).

    Every service refuses the user's tokens whose ``iat`` is before
    ``not_before``; tokens issued since (after a refresh, with the new role)
    are accepted.
    """

    id: uuid.UUID = Field(description="The user's id (the tokens' `sub`).")
    change: UserChange
    role: str = Field(description="The user's role after the change.", examples=["member"])
    is_active: bool
    not_before: AwareDatetime = Field(
        description="Tokens of this user issued (`iat`) before this instant are refused."
    )
    tokens_expire_by: AwareDatetime = Field(
        description="When the last token issued before `not_before` expires (clock skew "
        "included): after it, the revocation may be forgotten."
    )
