"""${Title}Service over real gRPC (§7), signed as a peer service would call it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

from lkern.proto.${name}.v1 import ${name}_pb2 as pb
from lkern.proto.${name}.v1 import ${name}_pb2_grpc as pb_grpc
from tests.api.test_${name} import create
from tests.conftest import ServiceUnderTest
from tests.rpc.test_contacts_grpc import WithCredential, code_of


def channel_to(service: ServiceUnderTest, *interceptors) -> grpc.aio.Channel:
    assert service.runtime.grpc_server is not None
    target = f"127.0.0.1:{service.runtime.grpc_server.port}"
    return grpc.aio.insecure_channel(target, interceptors=list(interceptors))


@pytest.fixture
async def stub(
    ${name}_service: ServiceUnderTest, ${name}: httpx.AsyncClient
) -> AsyncIterator[pb_grpc.${Title}ServiceStub]:
    channel = channel_to(${name}_service, WithCredential())
    yield pb_grpc.${Title}ServiceStub(channel)
    await channel.close()


async def test_calls_without_service_credentials_are_refused(${name}_service):
    async with channel_to(${name}_service) as channel:
        call = pb_grpc.${Title}ServiceStub(channel).Get${Noun}(
            pb.Get${Noun}Request(id=str(uuid.uuid4())), timeout=5
        )
        assert await code_of(call) is grpc.StatusCode.UNAUTHENTICATED


async def test_get_${noun}(stub, ${name}):
    created = await create(${name})
    answer = await stub.Get${Noun}(pb.Get${Noun}Request(id=created["id"]), timeout=5)
    assert answer.${noun}.id == created["id"] and answer.${noun}.name == created["name"]
% if prefix:
    assert answer.${noun}.code == created["code"]
% endif
    assert answer.${noun}.version == 1 and answer.${noun}.created_at.seconds > 0


async def test_get_${noun}_errors(stub, ${name}):
    deleted = await create(${name})
    await ${name}.delete(f"/api/v1/${name}/{deleted['id']}")
    for missing in (deleted["id"], str(uuid.uuid4())):
        call = stub.Get${Noun}(pb.Get${Noun}Request(id=missing), timeout=5)
        assert await code_of(call) is grpc.StatusCode.NOT_FOUND
    malformed = stub.Get${Noun}(pb.Get${Noun}Request(id="nope"), timeout=5)
    assert await code_of(malformed) is grpc.StatusCode.INVALID_ARGUMENT


async def test_get_${name}_by_ids_in_the_order_asked(stub, ${name}):
    first, second = await create(${name}, name="First"), await create(${name}, name="Second")
    ids = [second["id"], str(uuid.uuid4()), first["id"]]
    answer = await stub.Get${Title}ByIds(pb.Get${Title}ByIdsRequest(ids=ids), timeout=5)
    assert [item.id for item in answer.${name}] == [second["id"], first["id"]]
