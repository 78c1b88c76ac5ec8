"""ContactsService over gRPC (§7): what other services may ask of contacts."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from lkern.contacts import service
from lkern.contacts.models import Contact
from lkern.platform.grpc.server import InvalidArgument, Registration
from lkern.platform.runtime import ServiceRuntime
from lkern.proto.contacts.v1 import contacts_pb2 as pb
from lkern.proto.contacts.v1 import contacts_pb2_grpc as pb_grpc


def parse_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument(f"not a contact id: {value[:64]!r}") from None


def _timestamp(moment: Any) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def to_message(contact: Contact) -> pb.Contact:
    return pb.Contact(
        id=str(contact.id),
        name=contact.name,
        email=contact.email,
        phone=contact.phone,
        company=contact.company,
        is_active=contact.is_active,
        version=contact.version,
        created_at=_timestamp(contact.created_at),
        updated_at=_timestamp(contact.updated_at),
    )


class ContactsServicer(pb_grpc.ContactsServiceServicer):
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    async def GetContact(
        self, request: pb.GetContactRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetContactResponse:
        contact = await service.get_contact(self.runtime.unit_of_work(), parse_id(request.id))
        return pb.GetContactResponse(contact=to_message(contact))

    async def GetContactsByIds(
        self, request: pb.GetContactsByIdsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetContactsByIdsResponse:
        if len(request.ids) > service.MAX_IDS_PER_LOOKUP:
            raise InvalidArgument(
                f"at most {service.MAX_IDS_PER_LOOKUP} ids, got {len(request.ids)}"
            )
        ids = [parse_id(value) for value in request.ids]
        contacts = await service.get_contacts_by_ids(self.runtime.unit_of_work(), ids)
        return pb.GetContactsByIdsResponse(contacts=[to_message(c) for c in contacts])

    async def ValidateContact(
        self, request: pb.ValidateContactRequest, context: grpc.aio.ServicerContext
    ) -> pb.ValidateContactResponse:
        reason = await service.validate_contact(self.runtime.unit_of_work(), parse_id(request.id))
        return pb.ValidateContactResponse(is_valid=reason is None, error_message=reason or "")


def grpc_services(runtime: ServiceRuntime) -> list[Registration]:
    servicer = ContactsServicer(runtime)
    return [lambda server: pb_grpc.add_ContactsServiceServicer_to_server(servicer, server)]
