"""Contacts' API schemas: distinct create, update and read shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from lkern.platform.emails import Email, StoredEmail
from lkern.platform.schemas import PartialUpdate, Trimmed

Name = Annotated[str, Trimmed(255, 1)]
Phone = Annotated[str, Trimmed(32, 3)]
Company = Annotated[str, Trimmed(255)]
Notes = Annotated[str, StringConstraints(max_length=10_000)]


class ContactCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="Full name, 1-255 characters.", examples=["Ada Lovelace"])
    email: Email = Field(
        description="Unique e-mail address; stored lower-case.", examples=["ada@example.com"]
    )
    phone: Phone | None = Field(
        default=None,
        description="Phone number; stored in E.164 and unique when present.",
        examples=["+421905123456"],
    )
    company: Company | None = Field(
        default=None, description="Company name.", examples=["Analytical Engines Ltd"]
    )
    notes: Notes | None = Field(default=None, description="Free text, up to 10,000 characters.")
    is_active: bool = Field(
        default=True, description="Inactive contacts cannot be used for new orders."
    )


class ContactUpdate(PartialUpdate):
    """Partial update: only the fields sent are changed; null clears an optional field."""

    nullable: ClassVar[frozenset[str]] = frozenset({"phone", "company", "notes"})

    name: Name | None = Field(default=None, description="Full name, 1-255 characters.")
    email: Email | None = Field(default=None, description="Unique e-mail address.")
    phone: Phone | None = Field(default=None, description="Phone number; null removes it.")
    company: Company | None = Field(default=None, description="Company name; null removes it.")
    notes: Notes | None = Field(default=None, description="Free text; null removes it.")
    is_active: bool | None = Field(default=None, description="Whether the contact is active.")


class ContactRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Contact id (UUIDv7).")
    name: str = Field(examples=["Ada Lovelace"])
    email: StoredEmail = Field(examples=["ada@example.com"])
    phone: str | None = Field(examples=["+421905123456"])
    company: str | None
    notes: str | None
    is_active: bool
    version: int = Field(description="Incremented on every change; send it back in If-Match.")
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = Field(description="When it was soft-deleted, if it was.")
    is_deleted: bool
