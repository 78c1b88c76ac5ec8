"""Orders' tables with their domain rules, and the read model of the contacts they belong to."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lkern.orders.enums import OrderStatus
from lkern.orders.rules import ENTERED_AT, LineSpec, check_transition, line_total, order_total
from lkern.platform.db import IdMixin, Model, Money, service_metadata, utcnow
from lkern.platform.errors import Conflict
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

    @property
    def is_draft(self) -> bool:
        return self.status == OrderStatus.DRAFT

    def require_draft(self, what: str) -> None:
        """Refuse (409) a change ``what`` names unless the order is still a draft."""
        if not self.is_draft:
            raise Conflict(
                f"{what} can change only while the order is a draft; it is {self.status}.",
                code="ORDER_NOT_DRAFT",
            )

    def set_lines(self, lines: Iterable[LineSpec]) -> None:
        """Replace the lines as a whole (draft only), the total computed again."""
        self.require_draft("Lines")
        self.lines = [
            OrderLine(
                position=position,
                description=line.description,
                part_id=line.part_id,
                quantity=line.quantity,
                unit_price=line.unit_price,
                line_total=line_total(line.quantity, line.unit_price),
            )
            for position, line in enumerate(lines, start=1)
        ]
        self.total = order_total(line.line_total for line in self.lines)

    def revise(self, changes: Mapping[str, Any], now: datetime) -> bool:
        """Apply the fields ``changes`` names (``lines``, ``currency``, ``notes``,
        ``contact_id``); lines and currency only in a draft. Whether anything changed.

        Lines are replaced whenever named. ``updated_at`` moves with any change,
        so the order's row, and with it the version, changes even when only the
        lines table does."""
        changed = False
        if "lines" in changes:
            self.set_lines(changes["lines"])
            changed = True
        if "currency" in changes and changes["currency"] != self.currency:
            self.require_draft("The currency")
            self.currency = changes["currency"]
            changed = True
        if "contact_id" in changes and changes["contact_id"] != self.contact_id:
            self.require_draft("The customer")
            self.contact_id = changes["contact_id"]
            changed = True
        if "notes" in changes and changes["notes"] != self.notes:
            self.notes = changes["notes"]
            changed = True
        if changed:
            self.updated_at = now
        return changed

    def replace_with(self, document: Mapping[str, Any], now: datetime) -> None:
        """A ``PUT``: every field as the full document has it; only in a draft."""
        self.require_draft("The order as a whole")
        self.revise(document, now)

    def move_to(self, target: OrderStatus, now: datetime) -> OrderStatus:
        """Take the transition to ``target`` (409 unless the status machine allows
        it), stamping when ``target`` was entered; returns the status left."""
        current = OrderStatus(self.status)
        check_transition(current, target)
        self.status = target
        setattr(self, ENTERED_AT[target], now)
        return current


@dataclass(frozen=True, slots=True)
class CustomerOrder:
    """An order and its customer's name, as orders last heard it from contacts."""

    order: Order
    customer_name: str | None


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
