"""What other services ask of identity: is this user someone work can be given to?"""

from __future__ import annotations

import uuid
from typing import Protocol

import grpc

from lkern.platform.grpc.client import DependencyUnavailable, GrpcClient
from lkern.platform.service import GrpcPeer
from lkern.proto.identity.v1 import identity_pb2 as pb
from lkern.proto.identity.v1 import identity_pb2_grpc as pb_grpc

UNAVAILABLE_CODE = "IDENTITY_UNAVAILABLE"
#: Identity as a peer: at the target the calling service's settings name.
IDENTITY_PEER = GrpcPeer(
    "identity", target_setting="identity_grpc_target", unavailable_code=UNAVAILABLE_CODE
)


class UsersDirectory(Protocol):
    async def why_not_assignable(self, user_id: uuid.UUID) -> str | None:
        """Why the user cannot be assigned work, or None when they can."""


class GrpcUsersDirectory:
    def __init__(self, client: GrpcClient) -> None:
        self._client = client
        self._stub = pb_grpc.IdentityServiceStub(client.channel())

    async def why_not_assignable(self, user_id: uuid.UUID) -> str | None:
        try:
            answer = await self._client.call(self._stub.GetUser, pb.GetUserRequest(id=str(user_id)))
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                return f"user {user_id} does not exist"
            raise DependencyUnavailable(
                "The identity service could not check the user; try again shortly.",
                code=UNAVAILABLE_CODE,
            ) from error
        if not answer.user.is_active:
            return f"user {user_id} is inactive"
        return None
