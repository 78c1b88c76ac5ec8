"""Events of the ${name} service (${code})."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from lkern.events.base import ${"AttachmentData, " if files else ""}EventData, event


class ${Noun}Data(EventData):
    """A ${noun}'s public fields as they are after the change."""

    id: uuid.UUID
% if prefix:
    code: str = Field(examples=["${prefix}-2601-0001"])
% endif
    name: str
    is_active: bool
% if files:
    attachment_count: int
% endif
    version: int = Field(description="The ${noun}'s version after the change.")
    updated_at: datetime
    deleted_at: datetime | None


@event("lkern.${name}.created")
class ${Noun}Created(${Noun}Data):
    pass


@event("lkern.${name}.updated")
class ${Noun}Updated(${Noun}Data):
    """Any change of fields, activation and deactivation included."""


@event("lkern.${name}.deleted")
class ${Noun}Deleted(${Noun}Data):
    pass


@event("lkern.${name}.restored")
class ${Noun}Restored(${Noun}Data):
    pass


@event("lkern.${name}.permanently_deleted")
class ${Noun}PermanentlyDeleted(EventData):
    id: uuid.UUID
    audit_id: uuid.UUID = Field(description="The deletion audit recording it.")
% if files:


@event("lkern.${name}.deletion_failed")
class ${Noun}DeletionFailed(EventData):
    """Some of the ${noun}'s files could not be removed; the cleanup worker retries."""

    id: uuid.UUID
    audit_id: uuid.UUID
    files_found: int
    files_deleted: int
    files_failed: int
    error_message: str | None


@event("lkern.${name}.attachment_added")
class ${Noun}AttachmentAdded(EventData):
    id: uuid.UUID = Field(description="The ${noun}'s id.")
    version: int
    attachment: AttachmentData


@event("lkern.${name}.attachment_removed")
class ${Noun}AttachmentRemoved(EventData):
    id: uuid.UUID = Field(description="The ${noun}'s id.")
    version: int
    attachment: AttachmentData
% endif
