"""Events of the inventory service (lkms104)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from lkern.events.base import EventData, event


class PartData(EventData):
    """A part's public fields as they are after the change."""

    id: str = Field(description="The part's 4-letter id.", examples=["BZQM"])
    description: str
    manufacturer: str | None
    manufacturer_code: str | None
    category: str | None
    tags: list[str]
    package: str | None
    attributes: dict[str, str]
    seller: str | None
    seller_link: str | None
    total_quantity: int
    document_count: int
    version: int
    updated_at: datetime
    deleted_at: datetime | None


@event("lkern.inventory.part_created")
class PartCreated(PartData):
    pass


@event("lkern.inventory.part_updated")
class PartUpdated(PartData):
    previous: dict[str, Any] = Field(
        default_factory=dict, description="The changed fields' values before the change."
    )


@event("lkern.inventory.part_deleted")
class PartDeleted(PartData):
    pass


@event("lkern.inventory.part_restored")
class PartRestored(PartData):
    pass


@event("lkern.inventory.part_permanently_deleted")
class PartPermanentlyDeleted(EventData):
    id: str = Field(description="The part's 4-letter id (it may be given out again).")
    audit_id: uuid.UUID


@event("lkern.inventory.part_deletion_failed")
class PartDeletionFailed(EventData):
    """Some of the part's documents could not be removed; the cleanup worker retries."""

    id: str
    audit_id: uuid.UUID
    files_found: int
    files_deleted: int
    files_failed: int
    error_message: str | None


class DocumentData(EventData):
    file_id: uuid.UUID
    filename: str
    content_type: str
    size: int


@event("lkern.inventory.document_added")
class PartDocumentAdded(EventData):
    id: str = Field(description="The part's id.")
    version: int
    attachment: DocumentData


@event("lkern.inventory.document_removed")
class PartDocumentRemoved(EventData):
    id: str = Field(description="The part's id.")
    version: int
    attachment: DocumentData


@event("lkern.inventory.stock_changed")
class StockChanged(EventData):
    """One location's quantity changed (a move is two of these)."""

    part_id: str = Field(examples=["BZQM"])
    box_no: int
    loc_no: int
    delta: int = Field(description="Positive when stock came in, negative when it left.")
    kind: str = Field(description="add, remove, move_out, move_in, build or import.")
    quantity: int = Field(description="What the location holds now (0: free).")
    total_quantity: int = Field(description="The part's new total over every location.")
    reason: str | None
    user_id: str | None


class BuiltPart(EventData):
    part_id: str
    quantity: int = Field(description="Consumed by this build, all builds together.")


@event("lkern.inventory.project_built")
class ProjectBuilt(EventData):
    project_id: uuid.UUID
    name: str
    builds: int
    consumed: list[BuiltPart]
    user_id: str | None
