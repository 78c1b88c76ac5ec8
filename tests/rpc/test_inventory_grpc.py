"""InventoryService over real gRPC (§7): parts by their 4-letter ids, on both backends."""

from __future__ import annotations

import grpc
import pytest

from lkern.proto.inventory.v1 import inventory_pb2 as pb
from lkern.proto.inventory.v1 import inventory_pb2_grpc as pb_grpc
from tests.api.test_inventory import PARTS, new_part
from tests.rpc.test_contacts_grpc import WithCredential, channel_to, code_of


@pytest.fixture
async def stub(inventory_service, inventory):
    channel = channel_to(inventory_service, WithCredential())
    yield pb_grpc.InventoryServiceStub(channel)
    await channel.close()


async def test_get_part_and_not_found(stub, inventory):
    part = await new_part(inventory, manufacturer="TI", category="ics")
    answer = await stub.GetPart(pb.GetPartRequest(id=part["id"]), timeout=5)
    assert answer.part.id == part["id"] and answer.part.manufacturer == "TI"
    assert answer.part.total_quantity == 0 and answer.part.version == 1
    assert not answer.part.HasField("manufacturer_code")
    missing = stub.GetPart(pb.GetPartRequest(id="QQQQ"), timeout=5)
    assert await code_of(missing) is grpc.StatusCode.NOT_FOUND
    await inventory.delete(f"{PARTS}/{part['id']}")
    deleted = stub.GetPart(pb.GetPartRequest(id=part["id"]), timeout=5)
    assert await code_of(deleted) is grpc.StatusCode.NOT_FOUND


async def test_get_parts_by_ids(stub, inventory):
    first = await new_part(inventory)
    second = await new_part(inventory)
    answer = await stub.GetPartsByIds(
        pb.GetPartsByIdsRequest(ids=[second["id"], "QQQQ", first["id"], second["id"]]), timeout=5
    )
    assert [part.id for part in answer.parts] == [second["id"], first["id"]]


@pytest.mark.parametrize(
    "request_", [pb.GetPartsByIdsRequest(ids=["abcd"]), pb.GetPartsByIdsRequest(ids=["AB"] * 1001)]
)
async def test_malformed_ids_are_invalid_argument(stub, request_):
    assert (
        await code_of(stub.GetPartsByIds(request_, timeout=5)) is grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_malformed_id_of_get_part(stub):
    call = stub.GetPart(pb.GetPartRequest(id="bzqm"), timeout=5)
    assert await code_of(call) is grpc.StatusCode.INVALID_ARGUMENT
