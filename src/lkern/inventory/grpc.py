"""InventoryService over gRPC (§7): what other services may ask of inventory."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from lkern.inventory import service
from lkern.inventory.models import Part
from lkern.inventory.rules import is_part_id
from lkern.platform.grpc.server import (
    MAX_IDS_PER_LOOKUP,
    InvalidArgument,
    Registration,
    timestamp,
)
from lkern.platform.service import UnitOfWorkFactory
from lkern.proto.inventory.v1 import inventory_pb2 as pb
from lkern.proto.inventory.v1 import inventory_pb2_grpc as pb_grpc


def parse_part_id(value: str) -> str:
    if not is_part_id(value):
        raise InvalidArgument(f"not a part id (4 capital letters): {value[:64]!r}")
    return value


def parse_part_ids(values: Sequence[str]) -> list[str]:
    if len(values) > MAX_IDS_PER_LOOKUP:
        raise InvalidArgument(f"at most {MAX_IDS_PER_LOOKUP} ids per lookup, got {len(values)}")
    return [parse_part_id(value) for value in values]


def to_message(part: Part) -> pb.Part:
    return pb.Part(
        id=part.code,
        description=part.description,
        manufacturer=part.manufacturer,
        manufacturer_code=part.manufacturer_code,
        category=part.category,
        total_quantity=part.total_quantity,
        version=part.version,
        created_at=timestamp(part.created_at),
        updated_at=timestamp(part.updated_at),
    )


class InventoryServicer(pb_grpc.InventoryServiceServicer):
    def __init__(self, unit_of_work: UnitOfWorkFactory) -> None:
        self.unit_of_work = unit_of_work

    async def GetPart(
        self, request: pb.GetPartRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPartResponse:
        found = await service.get_part(self.unit_of_work(), parse_part_id(request.id))
        return pb.GetPartResponse(part=to_message(found.part))

    async def GetPartsByIds(
        self, request: pb.GetPartsByIdsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPartsByIdsResponse:
        ids = parse_part_ids(list(request.ids))
        parts = await service.get_parts_by_ids(self.unit_of_work(), ids)
        return pb.GetPartsByIdsResponse(parts=[to_message(part) for part in parts])


def grpc_services(unit_of_work: UnitOfWorkFactory) -> list[Registration]:
    servicer = InventoryServicer(unit_of_work)
    return [
        Registration(
            pb.DESCRIPTOR.services_by_name["InventoryService"],
            lambda server: pb_grpc.add_InventoryServiceServicer_to_server(servicer, server),
        )
    ]
