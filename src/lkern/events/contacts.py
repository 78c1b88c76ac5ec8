"""Events of the contacts service (lkms101)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from lkern.events.base import EventData, event


class ContactData(EventData):
    """A contact's public fields as they are after the change."""

    id: uuid.UUID
    name: str
    email: str
    phone: str | None
    company: str | None
    is_active: bool
    version: int = Field(description="The contact's version after the change.")
    updated_at: datetime
    deleted_at: datetime | None


@event("lkern.contacts.created")
class ContactCreated(ContactData):
    pass


@event("lkern.contacts.updated")
class ContactUpdated(ContactData):
    """Any change of fields, activation and deactivation included."""


@event("lkern.contacts.deleted")
class ContactDeleted(ContactData):
    pass


@event("lkern.contacts.restored")
class ContactRestored(ContactData):
    pass


@event("lkern.contacts.permanently_deleted")
class ContactPermanentlyDeleted(EventData):
    id: uuid.UUID
    audit_id: uuid.UUID = Field(description="The deletion audit recording it.")
