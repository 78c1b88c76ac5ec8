"""${Title}Service over gRPC (§7): what other services may ask of ${name}."""

from __future__ import annotations

import grpc

from lkern.platform.grpc.server import Registration, parse_id, parse_ids, timestamp
from lkern.platform.service import UnitOfWorkFactory
from lkern.proto.${name}.v1 import ${name}_pb2 as pb
from lkern.proto.${name}.v1 import ${name}_pb2_grpc as pb_grpc
from lkern.${name} import service
from lkern.${name}.models import ${Noun}


def to_message(${noun}: ${Noun}) -> pb.${Noun}:
    return pb.${Noun}(
        id=str(${noun}.id),
% if prefix:
        code=${noun}.code,
% endif
        name=${noun}.name,
        is_active=${noun}.is_active,
        version=${noun}.version,
        created_at=timestamp(${noun}.created_at),
        updated_at=timestamp(${noun}.updated_at),
    )


class ${Title}Servicer(pb_grpc.${Title}ServiceServicer):
    def __init__(self, unit_of_work: UnitOfWorkFactory) -> None:
        self.unit_of_work = unit_of_work

    async def Get${Noun}(
        self, request: pb.Get${Noun}Request, context: grpc.aio.ServicerContext
    ) -> pb.Get${Noun}Response:
        ${noun} = await service.get_${noun}(self.unit_of_work(), parse_id(request.id, "${noun} id"))
        return pb.Get${Noun}Response(${noun}=to_message(${noun}))

    async def Get${Title}ByIds(
        self, request: pb.Get${Title}ByIdsRequest, context: grpc.aio.ServicerContext
    ) -> pb.Get${Title}ByIdsResponse:
        ids = parse_ids(request.ids, "${noun} id")
        found = await service.get_${name}_by_ids(self.unit_of_work(), ids)
        return pb.Get${Title}ByIdsResponse(${name}=[to_message(item) for item in found])


def grpc_services(unit_of_work: UnitOfWorkFactory) -> list[Registration]:
    servicer = ${Title}Servicer(unit_of_work)
    return [
        Registration(
            pb.DESCRIPTOR.services_by_name["${Title}Service"],
            lambda server: pb_grpc.add_${Title}ServiceServicer_to_server(servicer, server),
        )
    ]
