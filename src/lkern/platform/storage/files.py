"""Files a resource owns (attachments, documents): their metadata and the column it lives in.

§8 keeps the metadata in a JSON column on the owner, so reading an item
lists its files without a join, and the files change with the item's
version like any other field.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, MappedColumn, mapped_column

from lkern.platform.db import utcnow
from lkern.platform.ids import new_id


class StoredFile(BaseModel):
    """One file as the owner's JSON column holds it."""

    model_config = ConfigDict(frozen=True)

    file_id: uuid.UUID
    filename: str
    content_type: str
    size: int
    object_key: str
    uploaded_at: datetime

    @classmethod
    def new(
        cls, *, service: str, owner_id: object, filename: str, content_type: str, extension: str
    ) -> StoredFile:
        """A file about to be uploaded: its key is generated, never taken from its name."""
        file_id = new_id()
        return cls(
            file_id=file_id,
            filename=filename,
            content_type=content_type,
            size=0,
            object_key=f"{service}/{owner_id}/{file_id}.{extension}",
            uploaded_at=utcnow(),
        )

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class FileRead(BaseModel):
    """A file as clients see it: everything but where it is stored."""

    model_config = ConfigDict(from_attributes=True)

    file_id: uuid.UUID = Field(description="The file's id, used in its download route.")
    filename: str = Field(description="The name it was uploaded with, made safe.")
    content_type: str = Field(description="Its type, as judged from its bytes.")
    size: int = Field(description="Its size in bytes.")
    uploaded_at: datetime = Field(description="When it was uploaded.")


class DownloadLinkRead(BaseModel):
    url: str = Field(description="Where to fetch the file; needs no token.")
    expires_at: datetime = Field(description="When the link stops working.")


def files_column() -> MappedColumn[Any]:
    """The JSON list of ``StoredFile`` documents on an owner row."""
    return mapped_column(JSON().with_variant(JSONB(), "postgresql"), default=list, nullable=False)


def stored_files(raw: list[dict[str, Any]] | None) -> list[StoredFile]:
    return [StoredFile.model_validate(item) for item in raw or []]


FilesList = Mapped[list[dict[str, Any]]]
