"""Orders' use cases; each owns its transaction through the unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select

from lkern.clients.contacts import ContactsDirectory
from lkern.clients.inventory import PartsCatalogue
from lkern.events.orders import (
    OrderCreated,
    OrderData,
    OrderDeleted,
    OrderPermanentlyDeleted,
    OrderRestored,
    OrderStatusChanged,
    OrderUpdated,
)
from lkern.orders.enums import OrderSortField, OrderStatus
from lkern.orders.models import ContactView, CustomerOrder, Order
from lkern.orders.schemas import OrderCreate, OrderTransition, OrderUpdate
from lkern.platform.codes import next_code
from lkern.platform.db import utcnow
from lkern.platform.errors import ConcurrentModification, Unprocessable
from lkern.platform.pagination import ListQuery, Slice, paginate, search_clause, sort_columns
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
        updated=OrderUpdated,
        deleted=OrderDeleted,
        restored=OrderRestored,
        permanently_deleted=OrderPermanentlyDeleted,
        snapshot=snapshot,
    ),
)
SORT_COLUMNS = sort_columns(OrderSortField, Order)


def with_customer(stmt: Select[Any]) -> Select[Any]:
    """Add the customer's name from the local read model: no call to contacts per row."""
    return stmt.add_columns(ContactView.name).outerjoin(
        ContactView, ContactView.contact_id == Order.contact_id
    )


async def _customer_name(uow: UnitOfWork, contact_id: uuid.UUID) -> str | None:
    view = await uow.session.get(ContactView, contact_id)
    return view.name if view is not None else None


async def with_customer_name(uow: UnitOfWork, order: Order) -> CustomerOrder:
    """``order`` with its customer's current name from the read model."""
    async with uow.read_only():
        return CustomerOrder(order, await _customer_name(uow, order.contact_id))


async def _check_contact(contacts: ContactsDirectory, contact_id: uuid.UUID) -> None:
    # Asked before the transaction opens: no connection is held while contacts answers.
    reason = await contacts.why_invalid(contact_id)
    if reason is not None:
        raise Unprocessable(reason, field="body.contact_id", code="CONTACT_INVALID")


async def _check_parts(parts: PartsCatalogue, lines: Sequence[Any] | None) -> None:
    """Lines naming a part must name a live one: one question to inventory for all lines,
    and none when no line names a part."""
    named = [(index, line.part_id) for index, line in enumerate(lines or []) if line.part_id]
    if not named:
        return
    missing = set(await parts.missing([part_id for _, part_id in named]))
    if missing:
        index = next(index for index, part_id in named if part_id in missing)
        raise Unprocessable(
            f"Unknown or deleted parts: {', '.join(sorted(missing))}.",
            field=f"body.lines.{index}.part_id",
            code="PART_INVALID",
        )


async def create_order(
    uow: UnitOfWork, data: OrderCreate, contacts: ContactsDirectory, parts: PartsCatalogue
) -> CustomerOrder:
    await _check_contact(contacts, data.contact_id)
    await _check_parts(parts, data.lines)
    async with uow:
        order = Order(
            code=await next_code(uow.session, CODE_PREFIX),
            contact_id=data.contact_id,
            status=OrderStatus.DRAFT,
            currency=data.currency,
            notes=data.notes,
        )
        order.set_lines(data.lines)
        uow.session.add(order)
        await uow.session.flush()
        uow.emit(OrderCreated(**snapshot(order)), order.id)
        await uow.commit()
        return CustomerOrder(order, await _customer_name(uow, order.contact_id))


async def get_order(
    uow: UnitOfWork, order_id: uuid.UUID, *, include_deleted: bool = False
) -> CustomerOrder:
    # Read-only: no BEGIN and ROLLBACK around the reads. Each statement sees
    # its own snapshot, as it would in a READ COMMITTED transaction anyway.
    async with uow.read_only():
        order = await ORDER.load_attached(uow, order_id, include_deleted=include_deleted)
        return CustomerOrder(order, await _customer_name(uow, order.contact_id))


async def list_orders(
    uow: UnitOfWork,
    query: ListQuery,
    *,
    status: OrderStatus | None = None,
    contact_id: uuid.UUID | None = None,
) -> Slice[CustomerOrder]:
    stmt = with_customer(ORDER.select_visible(include_deleted=query.include_deleted))
    if status is not None:
        stmt = stmt.where(Order.status == status)
    if contact_id is not None:
        stmt = stmt.where(Order.contact_id == contact_id)
    if query.search:
        stmt = stmt.where(search_clause(query.search, (Order.code, ContactView.name)))
    async with uow:
        found = await paginate(
            uow.session, stmt, query, sort_columns=SORT_COLUMNS, tie_breaker=Order.id, rows=True
        )
    return found.map(lambda row: CustomerOrder(*row))


async def update_order(
    uow: UnitOfWork,
    order_id: uuid.UUID,
    data: OrderUpdate,
    parts: PartsCatalogue,
    *,
    expected_version: int | None,
) -> CustomerOrder:
    """``PATCH``: notes any time; lines (replaced as a whole) and currency in a draft."""
    await _check_parts(parts, data.lines)

    async def apply(order: Order, changes: dict[str, Any]) -> None:
        order.revise(changes, utcnow())

    order = await ORDER.update(uow, order_id, data, expected_version=expected_version, apply=apply)
    return await with_customer_name(uow, order)


async def replace_order(
    uow: UnitOfWork,
    order_id: uuid.UUID,
    data: OrderCreate,
    contacts: ContactsDirectory,
    parts: PartsCatalogue,
    *,
    expected_version: int | None,
) -> CustomerOrder:
    """``PUT``: the whole order as sent, only while it is a draft; a new customer is
    validated as on create, and the lines' parts too."""
    await _check_parts(parts, data.lines)
    async with uow.read_only():
        seen = await ORDER.read_detached(uow, order_id)
    seen.require_draft("The order as a whole")
    validated = seen.contact_id != data.contact_id
    if validated:
        await _check_contact(contacts, data.contact_id)

    async def apply(order: Order, document: dict[str, Any]) -> None:
        if not validated and order.contact_id != data.contact_id:
            # Another writer changed the customer since it was looked at, so the
            # one sent was never validated.
            raise ConcurrentModification()
        order.replace_with(document, utcnow())

    order = await ORDER.replace(uow, order_id, data, expected_version=expected_version, apply=apply)
    return await with_customer_name(uow, order)


async def transition_order(
    uow: UnitOfWork, order_id: uuid.UUID, data: OrderTransition, *, expected_version: int | None
) -> CustomerOrder:
    left: list[OrderStatus] = []

    async def apply(order: Order) -> None:
        left.append(order.move_to(data.to, utcnow()))

    def status_changed(order: Order) -> OrderStatusChanged:
        return OrderStatusChanged(
            **snapshot(order), from_status=left[0].value, to_status=data.to.value
        )

    order = await ORDER.change(
        uow, order_id, expected_version=expected_version, apply=apply, event=status_changed
    )
    return await with_customer_name(uow, order)
