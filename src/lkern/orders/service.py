"""Orders' use cases; each owns its transaction through the unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select

from lkern.events.orders import (
    OrderCreated,
    OrderData,
    OrderDeleted,
    OrderPermanentlyDeleted,
    OrderRestored,
    OrderStatusChanged,
    OrderUpdated,
)
from lkern.orders.contacts import ContactsDirectory
from lkern.orders.enums import OrderStatus
from lkern.orders.models import ContactView, Order, OrderLine
from lkern.orders.rules import ENTERED_AT, check_transition, line_total, order_total
from lkern.orders.schemas import (
    OrderCreate,
    OrderLineCreate,
    OrderRead,
    OrderTransition,
    OrderUpdate,
)
from lkern.platform.codes import next_code
from lkern.platform.db import utcnow
from lkern.platform.errors import Conflict, Unprocessable
from lkern.platform.http import check_version
from lkern.platform.pagination import ListQuery, paginate, search_clause
from lkern.platform.resources import LifecycleEvents, ResourceKind
from lkern.platform.uow import UnitOfWork

CODE_PREFIX = "ORD"


def snapshot(order: Order) -> dict[str, Any]:
    """The order's public fields, as every orders event carries them."""
    fields = {name: getattr(order, name) for name in OrderData.model_fields if name != "line_count"}
    return {**fields, "line_count": len(order.lines)}


ORDER = ResourceKind(
    Order,
    "order",
    events=LifecycleEvents(
        deleted=OrderDeleted,
        restored=OrderRestored,
        permanently_deleted=OrderPermanentlyDeleted,
        snapshot=snapshot,
    ),
)
SORT_COLUMNS = {
    "code": Order.code,
    "created_at": Order.created_at,
    "total": Order.total,
    "status": Order.status,
}


def with_customer(stmt: Select[Any]) -> Select[Any]:
    """Add the customer's name from the local read model: no call to contacts per row."""
    return stmt.add_columns(ContactView.name).outerjoin(
        ContactView, ContactView.contact_id == Order.contact_id
    )


def present(order: Order, customer_name: str | None) -> OrderRead:
    return OrderRead.model_validate(
        {
            **{
                name: getattr(order, name)
                for name in OrderRead.model_fields
                if hasattr(order, name)
            },
            "customer_name": customer_name,
            "lines": order.lines,
        },
        from_attributes=True,
    )


def build_lines(lines: Sequence[OrderLineCreate]) -> list[OrderLine]:
    return [
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


async def customer_name(uow: UnitOfWork, contact_id: uuid.UUID) -> str | None:
    view = await uow.session.get(ContactView, contact_id)
    return view.name if view is not None else None


async def create_order(
    uow: UnitOfWork, data: OrderCreate, contacts: ContactsDirectory
) -> OrderRead:
    # Asked before the transaction opens: no connection is held while contacts answers.
    reason = await contacts.why_invalid(data.contact_id)
    if reason is not None:
        raise Unprocessable(reason, field="body.contact_id", code="CONTACT_INVALID")
    async with uow:
        lines = build_lines(data.lines)
        order = Order(
            code=await next_code(uow.session, CODE_PREFIX),
            contact_id=data.contact_id,
            currency=data.currency,
            notes=data.notes,
            lines=lines,
            total=order_total(line.line_total for line in lines),
        )
        uow.session.add(order)
        await uow.session.flush()
        uow.emit(OrderCreated(**snapshot(order)), order.id)
        await uow.commit()
        return present(order, await customer_name(uow, order.contact_id))


async def get_order(
    uow: UnitOfWork, order_id: uuid.UUID, *, include_deleted: bool = False
) -> OrderRead:
    async with uow:
        stmt = with_customer(
            ORDER.visible(include_deleted=include_deleted).where(Order.id == order_id)
        )
        row = (await uow.session.execute(stmt)).one_or_none()
        if row is None:
            raise ORDER.not_found(order_id)
        return present(row[0], row[1])


async def read_order(uow: UnitOfWork, order: Order) -> OrderRead:
    async with uow:
        return present(order, await customer_name(uow, order.contact_id))


async def list_orders(
    uow: UnitOfWork,
    query: ListQuery,
    *,
    status: OrderStatus | None = None,
    contact_id: uuid.UUID | None = None,
) -> tuple[list[OrderRead], int]:
    stmt = with_customer(ORDER.visible(include_deleted=query.include_deleted))
    if status is not None:
        stmt = stmt.where(Order.status == status)
    if contact_id is not None:
        stmt = stmt.where(Order.contact_id == contact_id)
    if query.search:
        stmt = stmt.where(search_clause(query.search, (Order.code, ContactView.name)))
    async with uow:
        rows, total = await paginate(
            uow.session, stmt, query, sort_columns=SORT_COLUMNS, tie_breaker=Order.id, rows=True
        )
        return [present(order, name) for order, name in rows], total


def _require_draft(order: Order, what: str) -> None:
    if order.status != OrderStatus.DRAFT:
        raise Conflict(
            f"{what} can change only while the order is a draft; it is {order.status}.",
            code="ORDER_NOT_DRAFT",
        )


async def update_order(
    uow: UnitOfWork, order_id: uuid.UUID, data: OrderUpdate, *, expected_version: int | None
) -> OrderRead:
    changes = data.model_dump(exclude_unset=True)
    async with uow:
        order = await ORDER.get(uow.session, order_id)
        check_version(order.version, expected_version)
        changed = False
        if "lines" in changes:
            _require_draft(order, "Lines")
            assert data.lines is not None
            order.lines = build_lines(data.lines)
            order.total = order_total(line.line_total for line in order.lines)
            changed = True
        if "currency" in changes and changes["currency"] != order.currency:
            _require_draft(order, "The currency")
            order.currency = changes["currency"]
            changed = True
        if "notes" in changes and changes["notes"] != order.notes:
            order.notes = changes["notes"]
            changed = True
        if changed:
            # Replacing lines alone touches only the lines table; the order's
            # row (and so its version) must change with them.
            order.updated_at = utcnow()
            await uow.session.flush()
            uow.emit(OrderUpdated(**snapshot(order)), order.id)
        await uow.commit()
        return present(order, await customer_name(uow, order.contact_id))


async def transition_order(
    uow: UnitOfWork, order_id: uuid.UUID, data: OrderTransition, *, expected_version: int | None
) -> OrderRead:
    async with uow:
        order = await ORDER.get(uow.session, order_id)
        check_version(order.version, expected_version)
        current = OrderStatus(order.status)
        check_transition(current, data.to)
        order.status = data.to
        setattr(order, ENTERED_AT[data.to], utcnow())
        await uow.session.flush()
        uow.emit(
            OrderStatusChanged(
                **snapshot(order), from_status=current.value, to_status=data.to.value
            ),
            order.id,
        )
        await uow.commit()
        return present(order, await customer_name(uow, order.contact_id))
