"""Orders' tables, and the read model of the contacts they belong to."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lkern.orders.enums import OrderStatus
from lkern.platform.db import IdMixin, Model, Money, service_metadata, utcnow
from lkern.platform.models import ResourceMixin, enum_check


class OrdersBase(Model):
    __abstract__ = True
    metadata = service_metadata()


class Order(ResourceMixin, OrdersBase):
    __tablename__ = "orders"
    __table_args__ = (
        enum_check("status", OrderStatus),
        CheckConstraint("total >= 0", name="total_not_negative"),
    )

    code: Mapped[str] = mapped_column(String(32), unique=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.DRAFT, index=True)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    total: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"), index=True)
    notes: Mapped[str | None] = mapped_column(Text)
    confirmed_at: Mapped[datetime | None]
    fulfilled_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order",
        cascade="all, delete-orphan",
        order_by="OrderLine.position",
        lazy="selectin",
        passive_deletes=True,
    )


class OrderLine(IdMixin, OrdersBase):
    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    description: Mapped[str] = mapped_column(String(500))
    part_id: Mapped[str | None] = mapped_column(String(4))
    quantity: Mapped[int]
    unit_price: Mapped[Decimal] = mapped_column(Money())
    line_total: Mapped[Decimal] = mapped_column(Money())
    order: Mapped[Order] = relationship(back_populates="lines")


class ContactView(OrdersBase):
    """What orders knows of each contact, kept current by contacts' events.

    ``version`` is the contact's own version: an event older than what is
    stored (events of different types arrive on different topics, in any
    order) changes nothing.
    """

    __tablename__ = "contacts_view"

    contact_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    email: Mapped[str] = mapped_column(String(254))
    is_active: Mapped[bool]
    deleted: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int]
    synced_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
