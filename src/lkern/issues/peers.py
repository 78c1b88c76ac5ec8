"""The services issues asks: identity for assignees, contacts for customers."""

from __future__ import annotations

from lkern.clients.contacts import UNAVAILABLE_CODE as CONTACTS_UNAVAILABLE
from lkern.clients.contacts import ContactsDirectory, GrpcContactsDirectory
from lkern.clients.identity import UNAVAILABLE_CODE as IDENTITY_UNAVAILABLE
from lkern.clients.identity import GrpcUsersDirectory, UsersDirectory
from lkern.platform.runtime import ServiceRuntime


def contacts_directory(runtime: ServiceRuntime) -> ContactsDirectory:
    client = runtime.grpc_client(
        "contacts", runtime.settings.contacts_grpc_target, unavailable_code=CONTACTS_UNAVAILABLE
    )
    return GrpcContactsDirectory(client)


def users_directory(runtime: ServiceRuntime) -> UsersDirectory:
    client = runtime.grpc_client(
        "identity", runtime.settings.identity_grpc_target, unavailable_code=IDENTITY_UNAVAILABLE
    )
    return GrpcUsersDirectory(client)
