"""${whose} API schemas: distinct create, update and read shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from lkern.platform.schemas import PartialUpdate, Trimmed
% if files:
from lkern.platform.storage.files import FileRead
% endif

Name = Annotated[str, Trimmed(255, 1)]
Notes = Annotated[str, StringConstraints(max_length=10_000)]


class ${Noun}Create(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="1-255 characters.", examples=["Main hall"])
    notes: Notes | None = Field(default=None, description="Free text, up to 10,000 characters.")
    is_active: bool = Field(default=True, description="Whether the ${noun} is in use.")


class ${Noun}Update(PartialUpdate):
    """Partial update: only the fields sent are changed; null clears an optional field."""

    nullable: ClassVar[frozenset[str]] = frozenset({"notes"})

    name: Name | None = Field(default=None, description="1-255 characters.")
    notes: Notes | None = Field(default=None, description="Free text; null removes it.")
    is_active: bool | None = Field(default=None, description="Whether the ${noun} is in use.")


class ${Noun}Read(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="${Noun} id (UUIDv7).")
% if prefix:
    code: str = Field(examples=["${prefix}-2601-0001"])
% endif
    name: str = Field(examples=["Main hall"])
    notes: str | None
    is_active: bool
% if files:
    attachments: list[FileRead]
% endif
    version: int = Field(description="Incremented on every change; send it back in If-Match.")
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = Field(description="When it was soft-deleted, if it was.")
    is_deleted: bool
