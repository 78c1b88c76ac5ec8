"""IdentityService over real gRPC (§7): GetUser and GetUsersByIds."""

from __future__ import annotations

import uuid

import grpc
import pytest

from lkern.proto.identity.v1 import identity_pb2 as pb
from lkern.proto.identity.v1 import identity_pb2_grpc as pb_grpc
from tests.api.test_identity import bearer, login, new_user
from tests.rpc.test_contacts_grpc import WithCredential, code_of


@pytest.fixture
async def stub(identity_service, identity):
    port = identity_service.runtime.grpc_server.port
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{port}", interceptors=[WithCredential()]
    ) as channel:
        yield pb_grpc.IdentityServiceStub(channel)


async def test_get_user_and_batch(stub, identity):
    admin = (await login(identity))["access_token"]
    first, _ = await new_user(identity, admin, role="member")
    second, _ = await new_user(identity, admin, role="viewer")
    answer = await stub.GetUser(pb.GetUserRequest(id=first["id"]), timeout=5)
    assert (answer.user.email, answer.user.role, answer.user.is_active) == (
        first["email"],
        "member",
        True,
    )
    await identity.delete(f"/api/v1/users/{second['id']}", headers=bearer(admin))
    ids = [second["id"], first["id"], str(uuid.uuid4())]
    batch = await stub.GetUsersByIds(pb.GetUsersByIdsRequest(ids=ids), timeout=5)
    assert [user.id for user in batch.users] == [first["id"]]


async def test_errors(stub, identity_service):
    missing = pb.GetUserRequest(id=str(uuid.uuid4()))
    assert await code_of(stub.GetUser(missing, timeout=5)) is grpc.StatusCode.NOT_FOUND
    bad = pb.GetUserRequest(id="me")
    assert await code_of(stub.GetUser(bad, timeout=5)) is grpc.StatusCode.INVALID_ARGUMENT
    too_many = pb.GetUsersByIdsRequest(ids=[str(uuid.uuid4()) for _ in range(1001)])
    assert (
        await code_of(stub.GetUsersByIds(too_many, timeout=5)) is grpc.StatusCode.INVALID_ARGUMENT
    )
    port = identity_service.runtime.grpc_server.port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        anonymous = pb_grpc.IdentityServiceStub(channel)
        assert (
            await code_of(anonymous.GetUser(missing, timeout=5)) is grpc.StatusCode.UNAUTHENTICATED
        )
