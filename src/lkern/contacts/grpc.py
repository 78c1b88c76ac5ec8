"""ContactsService over gRPC (§7): what other services may ask of contacts."""

from __future__ import annotations

import grpc

from lkern.contacts import service
from lkern.contacts.models import Contact
from lkern.platform.grpc.server import Registration, parse_id, parse_ids, timestamp
from lkern.platform.service import UnitOfWorkFactory
from lkern.proto.contacts.v1 import contacts_pb2 as pb
from lkern.proto.contacts.v1 import contacts_pb2_grpc as pb_grpc


def to_message(contact: Contact) -> pb.Contact:
    return pb.Contact(
        id=str(contact.id),
        name=contact.name,
        email=contact.email,
        phone=contact.phone,
        company=contact.company,
        is_active=contact.is_active,
        version=contact.version,
        created_at=timestamp(contact.created_at),
        updated_at=timestamp(contact.updated_at),
    )


class ContactsServicer(pb_grpc.ContactsServiceServicer):
    def __init__(self, unit_of_work: UnitOfWorkFactory) -> None:
        self.unit_of_work = unit_of_work

    async def GetContact(
        self, request: pb.GetContactRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetContactResponse:
        contact = await service.get_contact(self.unit_of_work(), parse_id(request.id, "contact id"))
        return pb.GetContactResponse(contact=to_message(contact))

    async def GetContactsByIds(
        self, request: pb.GetContactsByIdsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetContactsByIdsResponse:
        ids = parse_ids(request.ids, "contact id")
        contacts = await service.get_contacts_by_ids(self.unit_of_work(), ids)
        return pb.GetContactsByIdsResponse(contacts=[to_message(c) for c in contacts])

    async def ValidateContact(
        self, request: pb.ValidateContactRequest, context: grpc.aio.ServicerContext
    ) -> pb.ValidateContactResponse:
        reason = await service.validate_contact(
            self.unit_of_work(), parse_id(request.id, "contact id")
        )
        return pb.ValidateContactResponse(is_valid=reason is None, error_message=reason or "")


def grpc_services(unit_of_work: UnitOfWorkFactory) -> list[Registration]:
    servicer = ContactsServicer(unit_of_work)
    return [
        Registration(
            pb.DESCRIPTOR.services_by_name["ContactsService"],
            lambda server: pb_grpc.add_ContactsServiceServicer_to_server(servicer, server),
        )
    ]
