"""IdentityService over gRPC (§7): users for other services."""

from __future__ import annotations

import grpc

from lkern.identity import service
from lkern.identity.models import User
from lkern.platform.grpc.server import Registration, parse_id, parse_ids, timestamp
from lkern.platform.service import UnitOfWorkFactory
from lkern.proto.identity.v1 import identity_pb2 as pb
from lkern.proto.identity.v1 import identity_pb2_grpc as pb_grpc


def to_message(user: User) -> pb.User:
    return pb.User(
        id=str(user.id),
        email=user.email,
        full_name=user.full_name,
        role=user.role,
        is_active=user.is_active,
        version=user.version,
        created_at=timestamp(user.created_at),
        updated_at=timestamp(user.updated_at),
    )


class IdentityServicer(pb_grpc.IdentityServiceServicer):
    def __init__(self, unit_of_work: UnitOfWorkFactory) -> None:
        self.unit_of_work = unit_of_work

    async def GetUser(
        self, request: pb.GetUserRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUserResponse:
        user = await service.get_user(self.unit_of_work(), parse_id(request.id, "user id"))
        return pb.GetUserResponse(user=to_message(user))

    async def GetUsersByIds(
        self, request: pb.GetUsersByIdsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUsersByIdsResponse:
        ids = parse_ids(request.ids, "user id")
        users = await service.get_users_by_ids(self.unit_of_work(), ids)
        return pb.GetUsersByIdsResponse(users=[to_message(user) for user in users])


def grpc_services(unit_of_work: UnitOfWorkFactory) -> list[Registration]:
    servicer = IdentityServicer(unit_of_work)
    return [
        Registration(
            pb.DESCRIPTOR.services_by_name["IdentityService"],
            lambda server: pb_grpc.add_IdentityServiceServicer_to_server(servicer, server),
        )
    ]
