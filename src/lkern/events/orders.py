"""Events of the orders service (lkms102)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import Field

from lkern.events.base import EventData, event


class OrderData(EventData):
    """An order's public fields as they are after the change."""

    id: uuid.UUID
    code: str = Field(examples=["ORD-2611-0001"])
    contact_id: uuid.UUID
    status: str
    currency: str = Field(examples=["EUR"])
    total: Decimal = Field(description="Exact, two decimal places; a JSON string.")
    line_count: int
    version: int
    updated_at: datetime
    deleted_at: datetime | None


@event("lkern.orders.created")
class OrderCreated(OrderData):
    pass


@event("lkern.orders.updated")
class OrderUpdated(OrderData):
    """Lines, notes or currency changed."""


@event("lkern.orders.status_changed")
class OrderStatusChanged(OrderData):
    from_status: str = Field(alias="from", description="Status before the transition.")
    to_status: str = Field(alias="to", description="Status after it (also in `status`).")


@event("lkern.orders.deleted")
class OrderDeleted(OrderData):
    pass


@event("lkern.orders.restored")
class OrderRestored(OrderData):
    pass


@event("lkern.orders.permanently_deleted")
class OrderPermanentlyDeleted(EventData):
    id: uuid.UUID
    audit_id: uuid.UUID
