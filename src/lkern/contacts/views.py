"""Contacts' REST routes: a thin layer over the service functions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Response, status

from lkern.contacts import service
from lkern.contacts.enums import ContactSortField
from lkern.contacts.models import Contact
from lkern.contacts.schemas import ContactCreate, ContactRead, ContactUpdate
from lkern.contacts.service import CONTACT
from lkern.contacts.settings import ContactsSettings
from lkern.platform.http import ExpectedVersion, with_etag
from lkern.platform.pagination import ListQuery, Page, list_query
from lkern.platform.problems import problem_responses
from lkern.platform.routers import protected_router
from lkern.platform.routes import add_lifecycle_routes
from lkern.platform.runtime import ServiceRuntime, Uow, settings_of

router = protected_router(prefix="/api/v1/contacts", tags=["contacts"])

ContactListQuery = Annotated[
    ListQuery,
    Depends(
        list_query(
            ContactSortField, ContactSortField.NAME, searchable="name, email, phone and company"
        )
    ),
]
Config = Annotated[ContactsSettings, Depends(settings_of(ContactsSettings))]
IncludeDeleted = Annotated[bool, Query(description="Also find a soft-deleted contact.")]


def _read(contact: Contact, response: Response) -> ContactRead:
    return with_etag(response, ContactRead.model_validate, contact)


@router.get(
    "",
    summary="List contacts",
    response_model=Page[ContactRead],
    responses=problem_responses(400, 422, 503),
)
async def list_contacts(
    uow: Uow,
    query: ContactListQuery,
    is_active: Annotated[
        bool | None, Query(description="Only active or only inactive contacts.")
    ] = None,
) -> Page[ContactRead]:
    found = await service.list_contacts(uow, query, is_active=is_active)
    return found.page(ContactRead.model_validate)


@router.post(
    "",
    express=True,
    summary="Create a contact",
    status_code=status.HTTP_201_CREATED,
    response_model=ContactRead,
    responses=problem_responses(400, 409, 422, 503),
)
async def create_contact(
    data: ContactCreate, uow: Uow, settings: Config, response: Response
) -> ContactRead:
    contact = await service.create_contact(uow, data, phone_region=settings.phone_default_region)
    response.headers["Location"] = f"{router.prefix}/{contact.id}"
    return _read(contact, response)


@router.get(
    "/{contact_id:uuid}",
    express=True,
    summary="Get a contact",
    response_model=ContactRead,
    responses=problem_responses(400, 404, 422, 503),
)
async def get_contact(
    contact_id: uuid.UUID, uow: Uow, response: Response, include_deleted: IncludeDeleted = False
) -> ContactRead:
    contact = await service.get_contact(uow, contact_id, include_deleted=include_deleted)
    return _read(contact, response)


@router.put(
    "/{contact_id:uuid}",
    summary="Replace a contact (fields left out go back to their defaults)",
    response_model=ContactRead,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def replace_contact(
    contact_id: uuid.UUID,
    data: ContactCreate,
    uow: Uow,
    settings: Config,
    expected_version: ExpectedVersion,
    response: Response,
) -> ContactRead:
    contact = await service.replace_contact(
        uow,
        contact_id,
        data,
        expected_version=expected_version,
        phone_region=settings.phone_default_region,
    )
    return _read(contact, response)


@router.patch(
    "/{contact_id:uuid}",
    summary="Change some fields of a contact",
    response_model=ContactRead,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def update_contact(
    contact_id: uuid.UUID,
    data: ContactUpdate,
    uow: Uow,
    settings: Config,
    expected_version: ExpectedVersion,
    response: Response,
) -> ContactRead:
    contact = await service.update_contact(
        uow,
        contact_id,
        data,
        expected_version=expected_version,
        phone_region=settings.phone_default_region,
    )
    return _read(contact, response)


@router.post(
    "/{contact_id:uuid}/activate",
    summary="Mark a contact active",
    response_model=ContactRead,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def activate_contact(
    contact_id: uuid.UUID, uow: Uow, expected_version: ExpectedVersion, response: Response
) -> ContactRead:
    contact = await service.set_active(uow, contact_id, True, expected_version=expected_version)
    return _read(contact, response)


@router.post(
    "/{contact_id:uuid}/deactivate",
    summary="Mark a contact inactive",
    response_model=ContactRead,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def deactivate_contact(
    contact_id: uuid.UUID, uow: Uow, expected_version: ExpectedVersion, response: Response
) -> ContactRead:
    contact = await service.set_active(uow, contact_id, False, expected_version=expected_version)
    return _read(contact, response)


async def _present(_: ServiceRuntime, contact: Contact) -> ContactRead:
    return ContactRead.model_validate(contact)


add_lifecycle_routes(router, CONTACT, read_model=ContactRead, present=_present)
