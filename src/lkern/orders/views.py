"""Orders' REST routes: a thin layer over the service functions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Response, status

from lkern.clients.contacts import CONTACTS_PEER, ContactsDirectory, GrpcContactsDirectory
from lkern.clients.inventory import INVENTORY_PEER, GrpcPartsCatalogue, PartsCatalogue
from lkern.orders import service
from lkern.orders.enums import OrderSortField, OrderStatus
from lkern.orders.models import CustomerOrder, Order
from lkern.orders.schemas import OrderCreate, OrderRead, OrderTransition, OrderUpdate
from lkern.orders.service import ORDER
from lkern.platform.http import ExpectedVersion, with_etag
from lkern.platform.pagination import ListQuery, Page, list_query
from lkern.platform.problems import problem_responses
from lkern.platform.routers import protected_router
from lkern.platform.routes import add_lifecycle_routes
from lkern.platform.runtime import ServiceRuntime, Uow, get_runtime

router = protected_router(prefix="/api/v1/orders", tags=["orders"])

OrderListQuery = Annotated[
    ListQuery,
    Depends(
        list_query(OrderSortField, OrderSortField.CREATED_AT, searchable="code and customer name")
    ),
]


async def _contacts(runtime: Annotated[ServiceRuntime, Depends(get_runtime)]) -> ContactsDirectory:
    # async: the gRPC channel belongs to the event loop, not to a worker thread.
    return GrpcContactsDirectory(runtime.peer(CONTACTS_PEER.name))


async def _parts(runtime: Annotated[ServiceRuntime, Depends(get_runtime)]) -> PartsCatalogue:
    return GrpcPartsCatalogue(runtime.peer(INVENTORY_PEER.name))


Contacts = Annotated[ContactsDirectory, Depends(_contacts)]
Parts = Annotated[PartsCatalogue, Depends(_parts)]


def present(found: CustomerOrder) -> OrderRead:
    order = found.order
    return OrderRead.model_validate(
        {
            **{
                name: getattr(order, name)
                for name in OrderRead.model_fields
                if hasattr(order, name)
            },
            "customer_name": found.customer_name,
            "lines": order.lines,
        },
        from_attributes=True,
    )


def _read(found: CustomerOrder, response: Response) -> OrderRead:
    return with_etag(response, present, found)


@router.get(
    "",
    summary="List orders",
    response_model=Page[OrderRead],
    responses=problem_responses(400, 422, 503),
)
async def list_orders(
    uow: Uow,
    query: OrderListQuery,
    status: Annotated[OrderStatus | None, Query(description="Only orders in this status.")] = None,
    contact_id: Annotated[
        uuid.UUID | None, Query(description="Only this customer's orders.")
    ] = None,
) -> Page[OrderRead]:
    found = await service.list_orders(uow, query, status=status, contact_id=contact_id)
    return found.page(present)


@router.post(
    "",
    summary="Create an order (the contact is validated with the contacts service)",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderRead,
    responses=problem_responses(400, 409, 422, 503),
)
async def create_order(
    data: OrderCreate, uow: Uow, contacts: Contacts, parts: Parts, response: Response
) -> OrderRead:
    created = await service.create_order(uow, data, contacts, parts)
    response.headers["Location"] = f"{router.prefix}/{created.order.id}"
    return _read(created, response)


@router.get(
    "/{order_id:uuid}",
    express=True,
    summary="Get an order",
    response_model=OrderRead,
    responses=problem_responses(400, 404, 422, 503),
)
async def get_order(
    order_id: uuid.UUID,
    uow: Uow,
    response: Response,
    include_deleted: Annotated[bool, Query(description="Also find a soft-deleted order.")] = False,
) -> OrderRead:
    return _read(await service.get_order(uow, order_id, include_deleted=include_deleted), response)


@router.put(
    "/{order_id:uuid}",
    summary="Replace a draft order (fields left out go back to their defaults)",
    response_model=OrderRead,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def replace_order(
    order_id: uuid.UUID,
    data: OrderCreate,
    uow: Uow,
    contacts: Contacts,
    parts: Parts,
    expected_version: ExpectedVersion,
    response: Response,
) -> OrderRead:
    order = await service.replace_order(
        uow, order_id, data, contacts, parts, expected_version=expected_version
    )
    return _read(order, response)


@router.patch(
    "/{order_id:uuid}",
    summary="Change notes, or (in draft) currency and lines; lines are replaced as a whole",
    response_model=OrderRead,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def update_order(
    order_id: uuid.UUID,
    data: OrderUpdate,
    uow: Uow,
    parts: Parts,
    expected_version: ExpectedVersion,
    response: Response,
) -> OrderRead:
    order = await service.update_order(
        uow, order_id, data, parts, expected_version=expected_version
    )
    return _read(order, response)


@router.post(
    "/{order_id:uuid}/transition",
    summary="Move an order along draft → confirmed → fulfilled → closed, or cancel it",
    response_model=OrderRead,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def transition_order(
    order_id: uuid.UUID,
    data: OrderTransition,
    uow: Uow,
    expected_version: ExpectedVersion,
    response: Response,
) -> OrderRead:
    order = await service.transition_order(uow, order_id, data, expected_version=expected_version)
    return _read(order, response)


async def _present(runtime: ServiceRuntime, order: Order) -> OrderRead:
    return present(await service.with_customer_name(runtime.unit_of_work(), order))


add_lifecycle_routes(router, ORDER, read_model=OrderRead, present=_present)
