"""Identity's tables."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from lkern.platform.auth import Role
from lkern.platform.db import IdMixin, Model, service_metadata, utcnow
from lkern.platform.models import ResourceMixin, enum_check


class IdentityBase(Model):
    __abstract__ = True
    metadata = service_metadata()


class User(ResourceMixin, IdentityBase):
    __tablename__ = "users"
    __table_args__ = (enum_check("role", Role),)

    # Stored lower-case, so the unique index is case-insensitive in effect.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    full_name: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.VIEWER)
    is_active: Mapped[bool] = mapped_column(default=True)
    password_hash: Mapped[str] = mapped_column(String(255))


class RefreshToken(IdMixin, IdentityBase):
    """One refresh token; tokens rotated from one login share a family."""

    __tablename__ = "refresh_tokens"

    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
