"""Inventory as the platform sees it."""

from pathlib import Path

from sqlalchemy import func, select

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
from lkern.inventory.models import Box, InventoryBase, Part
from lkern.inventory.service import DOCUMENTS
from lkern.inventory.views import boxes, parts, projects
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.service import ServiceDefinition, UnitOfWorkFactory


async def collect_metrics(unit_of_work: UnitOfWorkFactory, metrics: ServiceMetrics) -> None:
    """Gauges from the boxes table (a row per box, ``used`` kept by every stock change) and
    the parts table's index on ``total_quantity``; no scan of locations or history."""
    gauge = metrics.gauge
    async with unit_of_work() as uow:
        boxes_rows = (await uow.session.execute(select(Box.box_no, Box.capacity, Box.used))).all()
        live = (Part.deleted_at.is_(None), Part.deletion_audit_id.is_(None))
        parts_count, quantity = (
            await uow.session.execute(
                select(func.count(), func.coalesce(func.sum(Part.total_quantity), 0)).where(*live)
            )
        ).one()
    gauge("lkern_inventory_parts", "Parts (soft-deleted left out).").set(parts_count)
    gauge("lkern_inventory_total_quantity", "Pieces in stock, all parts.").set(quantity)
    gauge("lkern_inventory_boxes", "Boxes.").set(len(boxes_rows))
    used = sum(row.used for row in boxes_rows)
    gauge("lkern_inventory_locations_used", "Occupied locations.").set(used)
    gauge("lkern_inventory_locations_free", "Free locations.").set(
        sum(row.capacity for row in boxes_rows) - used
    )
    utilisation = gauge(
        "lkern_inventory_box_utilisation", "Occupied share of each box's locations.", ["box_no"]
    )
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
