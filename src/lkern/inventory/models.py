"""Inventory's tables: parts, boxes, the locations holding stock, its history, projects."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    event,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from lkern.inventory.enums import StockChangeKind
from lkern.platform.db import Model, service_metadata, utcnow
from lkern.platform.ids import new_id
from lkern.platform.migrations import UNMAPPED_TABLES
from lkern.platform.models import ResourceMixin, enum_check
from lkern.platform.storage.files import FilesList, files_column
from lkern.platform.trigram import trigram_indexes

JSONType = JSON().with_variant(JSONB(), "postgresql")


class InventoryBase(Model):
    __abstract__ = True
    metadata = service_metadata()


# SQLite's search table (FTS5, created by the first revision) and its shadow tables.
InventoryBase.metadata.info[UNMAPPED_TABLES] = frozenset(
    f"parts_search{suffix}" for suffix in ("", "_data", "_idx", "_content", "_docsize", "_config")
)


class Part(ResourceMixin, InventoryBase):
    """A part. Clients know it by ``code`` (``BZQM``); ``id`` is its internal UUIDv7."""

    __tablename__ = "parts"
    __table_args__ = (
        CheckConstraint("total_quantity >= 0", name="total_quantity_not_negative"),
        *trigram_indexes("parts", ["search_text"]),
    )

    code: Mapped[str] = mapped_column(String(4), unique=True)
    description: Mapped[str] = mapped_column(String(500))
    manufacturer: Mapped[str | None] = mapped_column(String(255))
    manufacturer_code: Mapped[str | None] = mapped_column(String(255))
    category: Mapped[str | None] = mapped_column(String(100), index=True)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    package: Mapped[str | None] = mapped_column(String(100))
    attributes: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    seller: Mapped[str | None] = mapped_column(String(255))
    seller_link: Mapped[str | None] = mapped_column(String(2048))
    documents: FilesList = files_column()
    #: The sum of its locations' quantities, changed in the same statement as they are.
    total_quantity: Mapped[int] = mapped_column(Integer, default=0, index=True)
    #: Every searched text, lower-cased, in one column: trigram-indexed on
    #: PostgreSQL, mirrored into the FTS5 table ``parts_search`` on SQLite.
    search_text: Mapped[str] = mapped_column(Text, default="")


def search_text_of(values: dict[str, Any]) -> str:
    """The text search looks in: id, description, manufacturer and code, category,
    tags, attribute values and document file names, lower-cased, one per line."""
    pieces: list[str] = [
        values.get(name) or ""
        for name in ("code", "description", "manufacturer", "manufacturer_code", "category")
    ]
    pieces += list(values.get("tags") or [])
    pieces += [str(value) for value in (values.get("attributes") or {}).values()]
    pieces += [str(doc.get("filename", "")) for doc in values.get("documents") or []]
    return "\n".join(piece for piece in pieces if piece).lower()


@event.listens_for(Part, "before_update")
def _keep_search_text(_mapper: Any, _connection: Any, part: Part) -> None:
    # Every ORM write of a part (PATCH, PUT, documents) refreshes it in the same UPDATE.
    part.search_text = search_text_of({name: getattr(part, name) for name in SEARCH_SOURCES})


SEARCH_SOURCES = (
    "code",
    "description",
    "manufacturer",
    "manufacturer_code",
    "category",
    "tags",
    "attributes",
    "documents",
)


class Box(InventoryBase):
    __tablename__ = "boxes"
    __table_args__ = (CheckConstraint("capacity BETWEEN 1 AND 1000", name="capacity_range"),)

    box_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    description: Mapped[str | None] = mapped_column(String(500))
    capacity: Mapped[int] = mapped_column(Integer)
    #: Occupied locations, kept with every location taken or freed: lists and
    #: metrics read it instead of counting locations.
    used: Mapped[int] = mapped_column(Integer, default=0)
    #: Pieces held in its locations, changed with them: the total-quantity gauge
    #: sums the boxes (rows every stock change locks anyway) instead of the parts.
    quantity: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        server_default=func.now(), default=utcnow, onupdate=utcnow
    )

    __mapper_args__ = {"version_id_col": version, "eager_defaults": True}


class Location(InventoryBase):
    """An occupied location: one part, a positive quantity. A free location has no row."""

    __tablename__ = "locations"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    box_no: Mapped[int] = mapped_column(
        ForeignKey("boxes.box_no"), primary_key=True, autoincrement=False
    )
    loc_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    part_id: Mapped[str] = mapped_column(ForeignKey("parts.code"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)


class StockChange(InventoryBase):
    """One entry of a part's quantity history."""

    __tablename__ = "stock_history"
    __table_args__ = (
        Index("ix_stock_history_part_id_at", "part_id", "at"),
        enum_check("kind", StockChangeKind),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # A part's history goes with it when it is deleted for good: its id may be
    # given to a new part later.
    part_id: Mapped[str] = mapped_column(ForeignKey("parts.code", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    delta: Mapped[int] = mapped_column(Integer)
    box_no: Mapped[int] = mapped_column(Integer)
    loc_no: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(500))
    user_id: Mapped[str | None] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Tally(InventoryBase):
    """A count kept as it changes, in the transaction of each change, for the metrics to
    read instead of counting rows (``parts``: the live parts)."""

    __tablename__ = "tallies"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class Project(ResourceMixin, InventoryBase):
    __tablename__ = "projects"

    name: Mapped[str] = mapped_column(String(255), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    #: ``[{part_id, quantity}]``, quantity per build; a part at most once.
    requirements: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
