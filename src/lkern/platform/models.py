"""Mixins for resources and the platform's own tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Integer, String, Text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from lkern.platform.db import (
    PLATFORM_METADATA,
    IdMixin,
    PlatformBase,
    PlatformTables,
    TimestampMixin,
    utcnow,
)
from lkern.platform.enums import DeletionStatus


class VersionedMixin:
    """Optimistic locking: the ORM refuses to overwrite a row changed meanwhile."""

    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        # eager_defaults: values set by the database are loaded at flush, never
        # lazily afterwards (which an async session cannot do).
        return {"version_id_col": cls.__table__.c.version, "eager_defaults": True}  # type: ignore[attr-defined]


class SoftDeleteMixin:
    """Soft delete plus the link to a permanent deletion in progress."""

    deleted_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    deletion_audit_id: Mapped[uuid.UUID | None] = mapped_column(default=None)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def mark_deleted(self) -> None:
        self.deleted_at = utcnow()

    def mark_restored(self) -> None:
        self.deleted_at = None


class ResourceMixin(IdMixin, TimestampMixin, SoftDeleteMixin, VersionedMixin):
    """Everything a client-facing resource has: id, timestamps, soft delete, version."""


def enum_check(column: str, values: type[Any]) -> CheckConstraint:
    """A CHECK constraint for a text column holding a str enum (no native ENUM types)."""
    allowed = ", ".join(f"'{member.value}'" for member in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=f"{column}_valid")


class DeletionAudit(IdMixin, PlatformBase):
    """One row per permanent deletion: committed before anything is removed."""

    metadata = PLATFORM_METADATA[PlatformTables.DELETION_AUDITS]
    __tablename__ = "deletion_audits"
    __table_args__ = (enum_check("status", DeletionStatus),)

    item_id: Mapped[uuid.UUID] = mapped_column(index=True)
    item_code: Mapped[str | None] = mapped_column(String(64))
    item_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=DeletionStatus.PENDING, index=True)
    files_found: Mapped[int] = mapped_column(default=0)
    files_deleted: Mapped[int] = mapped_column(default=0)
    files_failed: Mapped[int] = mapped_column(default=0)
    error_message: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int] = mapped_column(default=0)
    last_retry_at: Mapped[datetime | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    completed_at: Mapped[datetime | None]
    deleted_by: Mapped[str | None] = mapped_column(String(255))
    # The cleanup worker's lease and backoff: one replica works on an audit
    # at a time, and an audit is not retried before its time.
    next_retry_at: Mapped[datetime | None] = mapped_column(index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]


class CodeCounter(PlatformBase):
    """Last issued sequence number per code prefix and month."""

    metadata = PLATFORM_METADATA[PlatformTables.CODE_COUNTERS]
    __tablename__ = "code_counters"

    prefix: Mapped[str] = mapped_column(String(8), primary_key=True)
    period: Mapped[str] = mapped_column(String(4), primary_key=True)
    value: Mapped[int] = mapped_column(default=0)
