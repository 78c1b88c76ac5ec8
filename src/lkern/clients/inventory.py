"""What other services ask of inventory: which of these parts exist?"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import grpc

from lkern.platform.grpc.client import DependencyUnavailable, GrpcClient
from lkern.platform.service import GrpcPeer
from lkern.proto.inventory.v1 import inventory_pb2 as pb
from lkern.proto.inventory.v1 import inventory_pb2_grpc as pb_grpc

UNAVAILABLE_CODE = "INVENTORY_UNAVAILABLE"
#: Inventory as a peer: at the target the calling service's settings name.
INVENTORY_PEER = GrpcPeer(
    "inventory", target_setting="inventory_grpc_target", unavailable_code=UNAVAILABLE_CODE
)


class PartsCatalogue(Protocol):
    async def missing(self, part_ids: Sequence[str]) -> list[str]:
        """The ids among ``part_ids`` that name no live part (unknown or deleted)."""


class GrpcPartsCatalogue:
    def __init__(self, client: GrpcClient) -> None:
        self._client = client
        self._stub = pb_grpc.InventoryServiceStub(client.channel())

    async def missing(self, part_ids: Sequence[str]) -> list[str]:
        wanted = list(dict.fromkeys(part_ids))
        if not wanted:
            return []
        try:
            answer = await self._client.call(
                self._stub.GetPartsByIds, pb.GetPartsByIdsRequest(ids=wanted)
            )
        except grpc.aio.AioRpcError as error:
            # Anything but a clear answer from inventory is inventory failing us.
            raise DependencyUnavailable(
                "The inventory service could not check the parts; try again shortly.",
                code=UNAVAILABLE_CODE,
            ) from error
        found = {part.id for part in answer.parts}
        return [part_id for part_id in wanted if part_id not in found]
