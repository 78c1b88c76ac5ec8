"""Inventory as the platform sees it."""

from pathlib import Path

from sqlalchemy import select

from lkern.events.inventory import (
    PartCreated,
    PartDeleted,
    PartDeletionFailed,
    PartDocumentAdded,
    PartDocumentRemoved,
    PartPermanentlyDeleted,
    PartRestored,
    PartUpdated,
    ProjectBuilt,
    StockChanged,
)
from lkern.inventory.commands import commands
from lkern.inventory.grpc import grpc_services
from lkern.inventory.models import Box, InventoryBase, Tally
from lkern.inventory.service import DOCUMENTS, PARTS_TALLY
from lkern.inventory.views import boxes, parts, projects
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.service import ServiceDefinition, UnitOfWorkFactory


async def collect_metrics(unit_of_work: UnitOfWorkFactory, metrics: ServiceMetrics) -> None:
    """Gauges from the boxes (a row per box, its pieces and occupied locations kept by
    every stock change) and the tally of live parts: no count over parts, locations or
    history, however many there are."""
    gauge = metrics.gauge
    async with unit_of_work() as uow:
        boxes_rows = (
            await uow.session.execute(select(Box.box_no, Box.capacity, Box.used, Box.quantity))
        ).all()
        parts_count = await uow.session.scalar(select(Tally.value).where(Tally.name == PARTS_TALLY))
    gauge("lkern_inventory_parts", "Parts (soft-deleted left out).").set(parts_count or 0)
    gauge("lkern_inventory_total_quantity", "Pieces in stock, all parts.").set(
        sum(row.quantity for row in boxes_rows)
    )
    gauge("lkern_inventory_boxes", "Boxes.").set(len(boxes_rows))
    used = sum(row.used for row in boxes_rows)
    gauge("lkern_inventory_locations_used", "Occupied locations.").set(used)
    gauge("lkern_inventory_locations_free", "Free locations.").set(
        sum(row.capacity for row in boxes_rows) - used
    )
    utilisation = gauge(
        "lkern_inventory_box_utilisation", "Occupied share of each box's locations.", ["box_no"]
    )
    # A deleted box's series goes with it, rather than staying at its last value.
    utilisation.clear()
    for row in boxes_rows:
        utilisation.labels(str(row.box_no)).set(row.used / row.capacity)


INVENTORY = ServiceDefinition(
    name="inventory",
    code="lkms104",
    title="Inventory",
    description="An electronics-parts store: parts, boxes and locations, stock, projects.",
    version="0.1.0",
    rest_port=8104,
    grpc_port=5104,
    metadata=InventoryBase.metadata,
    routers=[parts, boxes, projects],
    migrations_dir=Path(__file__).parent / "migrations",
    grpc_services=grpc_services,
    file_slots=[DOCUMENTS],
    collect_metrics=collect_metrics,
    commands=commands,
    produces=[
        PartCreated,
        PartUpdated,
        PartDeleted,
        PartRestored,
        PartPermanentlyDeleted,
        PartDeletionFailed,
        PartDocumentAdded,
        PartDocumentRemoved,
        StockChanged,
        ProjectBuilt,
    ],
)
