"""Contacts' use cases; each owns its transaction through the unit of work."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError

from lkern.contacts.models import SEARCHED_COLUMNS, Contact
from lkern.contacts.rules import normalise_phone
from lkern.contacts.schemas import ContactCreate, ContactUpdate
from lkern.events.contacts import (
    ContactCreated,
    ContactData,
    ContactDeleted,
    ContactPermanentlyDeleted,
    ContactRestored,
    ContactUpdated,
)
from lkern.platform.errors import Conflict, NotFound, Unprocessable
from lkern.platform.http import check_version
from lkern.platform.pagination import ListQuery, paginate, search_clause
from lkern.platform.resources import LifecycleEvents, ResourceKind
from lkern.platform.uow import UnitOfWork


def snapshot(contact: Contact) -> dict[str, Any]:
    """The contact's public fields, as every contacts event carries them."""
    return {field: getattr(contact, field) for field in ContactData.model_fields}


CONTACT = ResourceKind(
    Contact,
    "contact",
    events=LifecycleEvents(
        deleted=ContactDeleted,
        restored=ContactRestored,
        permanently_deleted=ContactPermanentlyDeleted,
        snapshot=snapshot,
    ),
)
SORT_COLUMNS = {
    "name": Contact.name,
    "email": Contact.email,
    "created_at": Contact.created_at,
    "updated_at": Contact.updated_at,
}
SEARCH_COLUMNS = tuple(getattr(Contact, column) for column in SEARCHED_COLUMNS)
_UNIQUE_FIELDS = ("email", "phone")


def _phone(value: str | None, region: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalise_phone(value, region)
    except ValueError as exc:
        raise Unprocessable(str(exc), field="body.phone", code="CONTACT_PHONE_INVALID") from None


async def _ensure_unique(
    uow: UnitOfWork, values: dict[str, Any], exclude_id: uuid.UUID | None = None
) -> None:
    """Reject an e-mail or phone that another contact, deleted or not, already has."""
    for field in _UNIQUE_FIELDS:
        value = values.get(field)
        if value is None:
            continue
        stmt = select(Contact.id, Contact.deleted_at).where(getattr(Contact, field) == value)
        if exclude_id is not None:
            stmt = stmt.where(Contact.id != exclude_id)
        existing = (await uow.session.execute(stmt)).first()
        if existing is not None:
            raise _taken(field, existing.id, deleted=existing.deleted_at is not None)


def _taken(field: str, existing_id: uuid.UUID, *, deleted: bool) -> Conflict:
    label = "e-mail address" if field == "email" else "phone number"
    if deleted:
        detail = (
            f"The {label} belongs to deleted contact {existing_id}; restore that contact "
            "instead of creating a new one."
        )
    else:
        detail = f"The {label} belongs to contact {existing_id}."
    return Conflict(
        detail,
        code=f"CONTACT_{field.upper()}_TAKEN",
        extra={"field": field, "existing_id": str(existing_id), "existing_deleted": deleted},
    )


async def _explain_integrity_error(
    uow: UnitOfWork, error: IntegrityError, values: dict[str, Any], exclude_id: uuid.UUID | None
) -> Conflict:
    """Which unique value a rejected write collided with, as a precise 409."""
    async with uow:
        try:
            await _ensure_unique(uow, values, exclude_id)
        except Conflict as conflict:
            return conflict
    message = str(error.orig).lower()
    field = next((f for f in _UNIQUE_FIELDS if f in message), "email")
    return Conflict(
        f"A contact with this {field} already exists.", code=f"CONTACT_{field.upper()}_TAKEN"
    )


async def create_contact(
    uow: UnitOfWork, data: ContactCreate, *, phone_region: str | None
) -> Contact:
    values = data.model_dump()
    values["phone"] = _phone(data.phone, phone_region)
    async with uow:
        # No look-up first: the unique indexes decide, and only a rejected
        # insert pays for finding out which value was taken.
        try:
            contact = await CONTACT.insert(uow, values)
            uow.emit(ContactCreated(**snapshot(contact)), contact.id)
            await uow.commit()
        except IntegrityError as error:
            integrity_error = error
        else:
            return contact
    raise await _explain_integrity_error(uow, integrity_error, values, None)


async def get_contact(
    uow: UnitOfWork, contact_id: uuid.UUID, *, include_deleted: bool = False
) -> Contact:
    async with uow.read_only():
        return await CONTACT.read(uow, contact_id, include_deleted=include_deleted)


async def list_contacts(
    uow: UnitOfWork, query: ListQuery, *, is_active: bool | None = None
) -> tuple[list[Contact], int]:
    stmt = CONTACT.visible(include_deleted=query.include_deleted)
    if is_active is not None:
        stmt = stmt.where(Contact.is_active.is_(is_active))
    if query.search:
        stmt = stmt.where(search_clause(query.search, SEARCH_COLUMNS))
    async with uow:
        return await paginate(
            uow.session, stmt, query, sort_columns=SORT_COLUMNS, tie_breaker=Contact.id
        )


async def update_contact(
    uow: UnitOfWork,
    contact_id: uuid.UUID,
    data: ContactUpdate,
    *,
    expected_version: int | None,
    phone_region: str | None,
) -> Contact:
    changes = data.model_dump(exclude_unset=True)
    if "phone" in changes:
        changes["phone"] = _phone(changes["phone"], phone_region)
    async with uow:
        contact = await CONTACT.get(uow.session, contact_id)
        check_version(contact.version, expected_version)
        await _ensure_unique(uow, changes, exclude_id=contact_id)
        for field, value in changes.items():
            setattr(contact, field, value)
        try:
            await _commit_change(uow, contact)
        except IntegrityError as error:
            integrity_error = error
        else:
            return contact
    raise await _explain_integrity_error(uow, integrity_error, changes, contact_id)


async def set_active(
    uow: UnitOfWork, contact_id: uuid.UUID, active: bool, *, expected_version: int | None
) -> Contact:
    async with uow:
        contact = await CONTACT.get(uow.session, contact_id)
        check_version(contact.version, expected_version)
        contact.is_active = active
        await _commit_change(uow, contact)
        return contact


async def _commit_change(uow: UnitOfWork, contact: Contact) -> None:
    """Commit, with an updated event when something really changed."""
    if uow.session.is_modified(contact):
        await uow.session.flush()
        uow.emit(ContactUpdated(**snapshot(contact)), contact.id)
    await uow.commit()


async def get_contacts_by_ids(uow: UnitOfWork, ids: list[uuid.UUID]) -> list[Contact]:
    """The live contacts among ``ids``, in the order asked; unknown ids are left out."""
    if not ids:
        return []
    async with uow.read_only():
        found = {
            contact.id: contact
            for contact in await uow.session.scalars(CONTACT.visible().where(Contact.id.in_(ids)))
        }
    return [found[contact_id] for contact_id in dict.fromkeys(ids) if contact_id in found]


async def validate_contact(uow: UnitOfWork, contact_id: uuid.UUID) -> str | None:
    """Why the contact cannot be used for new business, or None when it can."""
    try:
        async with uow.read_only():
            contact = await CONTACT.read(uow, contact_id, include_deleted=True)
    except NotFound:
        return f"contact {contact_id} does not exist"
    if contact.is_deleted:
        return f"contact {contact_id} is deleted"
    if not contact.is_active:
        return f"contact {contact_id} is inactive"
    return None


async def count_by_state(uow: UnitOfWork) -> dict[str, int]:
    """Contacts that are active, inactive and soft-deleted (for the metrics gauges)."""
    state = case(
        (Contact.deleted_at.is_not(None), "deleted"),
        (Contact.is_active.is_(True), "active"),
        else_="inactive",
    )
    async with uow:
        rows = await uow.session.execute(
            select(state, func.count()).where(Contact.deletion_audit_id.is_(None)).group_by(state)
        )
        counts = {"active": 0, "inactive": 0, "deleted": 0}
        counts.update({str(name): int(number) for name, number in rows.all()})
        return counts
