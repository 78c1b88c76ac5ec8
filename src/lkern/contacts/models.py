"""Contacts' tables."""

from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lkern.platform.db import Model, service_metadata
from lkern.platform.models import ResourceMixin
from lkern.platform.trigram import trigram_indexes


class ContactsBase(Model):
    __abstract__ = True
    metadata = service_metadata()


#: Searched with ILIKE '%text%' (§11). On PostgreSQL each has a trigram index, so a
#: search reads the matching rows instead of the whole table.
SEARCHED_COLUMNS = ("name", "email", "phone", "company")


class Contact(ResourceMixin, ContactsBase):
    __tablename__ = "contacts"
    __table_args__ = trigram_indexes("contacts", SEARCHED_COLUMNS)

    name: Mapped[str] = mapped_column(String(255), index=True)
    # Stored lower-case, so the unique index is case-insensitive in effect.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    # E.164 or NULL; NULLs never collide in a unique index.
    phone: Mapped[str | None] = mapped_column(String(16), unique=True)
    company: Mapped[str | None] = mapped_column(String(255))
    notes: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(default=True, index=True)
