"""What other services ask of contacts: is this contact fit for new business?"""

from __future__ import annotations

import uuid
from typing import Protocol

import grpc

from lkern.platform.grpc.client import DependencyUnavailable, GrpcClient
from lkern.platform.service import GrpcPeer
from lkern.proto.contacts.v1 import contacts_pb2 as pb
from lkern.proto.contacts.v1 import contacts_pb2_grpc as pb_grpc

UNAVAILABLE_CODE = "CONTACTS_UNAVAILABLE"
#: Contacts as a peer: at the target the calling service's settings name.
CONTACTS_PEER = GrpcPeer(
    "contacts", target_setting="contacts_grpc_target", unavailable_code=UNAVAILABLE_CODE
)


class ContactsDirectory(Protocol):
    async def why_invalid(self, contact_id: uuid.UUID) -> str | None:
        """Why the contact cannot be used for new business, or None when it can."""


class GrpcContactsDirectory:
    def __init__(self, client: GrpcClient) -> None:
        self._client = client
        self._stub = pb_grpc.ContactsServiceStub(client.channel())

    async def why_invalid(self, contact_id: uuid.UUID) -> str | None:
        try:
            answer = await self._client.call(
                self._stub.ValidateContact, pb.ValidateContactRequest(id=str(contact_id))
            )
        except grpc.aio.AioRpcError as error:
            # Anything but a clear answer from contacts is contacts failing us.
            raise DependencyUnavailable(
                "The contacts service could not validate the contact; try again shortly.",
                code=UNAVAILABLE_CODE,
            ) from error
        return None if answer.is_valid else str(answer.error_message)
