"""Orders as the platform sees it."""

from pathlib import Path

from sqlalchemy import func, select

from lkern.clients.contacts import CONTACTS_PEER
from lkern.clients.inventory import INVENTORY_PEER
from lkern.events.orders import (
    OrderCreated,
    OrderDeleted,
    OrderPermanentlyDeleted,
    OrderRestored,
    OrderStatusChanged,
    OrderUpdated,
)
from lkern.orders.handlers import handlers
from lkern.orders.models import Order, OrdersBase
from lkern.orders.settings import OrdersSettings
from lkern.orders.views import router
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.service import ServiceDefinition, UnitOfWorkFactory


async def collect_metrics(unit_of_work: UnitOfWorkFactory, metrics: ServiceMetrics) -> None:
    gauge = metrics.gauge("lkern_orders", "Orders by status (soft-deleted left out).", ["status"])
    async with unit_of_work() as uow:
        rows = await uow.session.execute(
            select(Order.status, func.count())
            .where(Order.deleted_at.is_(None), Order.deletion_audit_id.is_(None))
            .group_by(Order.status)
        )
        for status, number in rows.all():
            gauge.labels(status).set(number)


ORDERS = ServiceDefinition(
    name="orders",
    code="lkms102",
    title="Orders",
    description="What customers buy, from draft to closed; totals are exact.",
    version="0.1.0",
    rest_port=8102,
    metadata=OrdersBase.metadata,
    routers=[router],
    migrations_dir=Path(__file__).parent / "migrations",
    handlers=handlers,
    issues_codes=True,
    peers=[CONTACTS_PEER, INVENTORY_PEER],
    settings_class=OrdersSettings,
    produces=[
        OrderCreated,
        OrderUpdated,
        OrderStatusChanged,
        OrderDeleted,
        OrderRestored,
        OrderPermanentlyDeleted,
    ],
    collect_metrics=collect_metrics,
)
