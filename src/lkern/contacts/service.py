"""Contacts' use cases; each owns its transaction through the unit of work."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.exc import IntegrityError

from lkern.contacts.enums import ContactSortField
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
from lkern.platform.db_errors import driver_error, is_integrity_error
from lkern.platform.errors import Conflict, NotFound, Unprocessable
from lkern.platform.pagination import (
    SEARCH,
    ListQuery,
    RowPages,
    Slice,
    search_clause,
    sort_columns,
)
from lkern.platform.resources import LifecycleEvents, ResourceKind, ResourceRow, listed
from lkern.platform.uow import UnitOfWork


def snapshot(contact: Contact) -> dict[str, Any]:
    """The contact's public fields, as every contacts event carries them."""
    return {field: getattr(contact, field) for field in ContactData.model_fields}


CONTACT = ResourceKind(
    Contact,
    "contact",
    events=LifecycleEvents(
        updated=ContactUpdated,
        deleted=ContactDeleted,
        restored=ContactRestored,
        permanently_deleted=ContactPermanentlyDeleted,
        snapshot=snapshot,
    ),
)
SORT_COLUMNS = sort_columns(ContactSortField, Contact)
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
    uow: UnitOfWork, error: BaseException, values: dict[str, Any], exclude_id: uuid.UUID | None
) -> Conflict:
    """Which unique value a rejected write collided with, as a precise 409."""
    async with uow:
        try:
            await _ensure_unique(uow, values, exclude_id)
        except Conflict as conflict:
            return conflict
    message = str(driver_error(error)).lower()
    field = next((f for f in _UNIQUE_FIELDS if f in message), "email")
    return Conflict(
        f"A contact with this {field} already exists.", code=f"CONTACT_{field.upper()}_TAKEN"
    )


async def create_contact(
    uow: UnitOfWork, data: ContactCreate, *, phone_region: str | None
) -> Contact:
    values = data.model_dump()
    values["phone"] = _phone(data.phone, phone_region)
    # Two statements and nothing of the ORM: below it (docs/benchmarks.md).
    async with uow.direct():
        # No look-up first: the unique indexes decide, and only a rejected
        # insert pays for finding out which value was taken.
        try:
            contact = await CONTACT.insert(uow, values)
            uow.emit(ContactCreated(**snapshot(contact)), contact.id)
            await uow.commit()
        except Exception as error:
            if not is_integrity_error(error):
                raise
            integrity_error = error
        else:
            return contact
    raise await _explain_integrity_error(uow, integrity_error, values, None)


async def get_contact(
    uow: UnitOfWork, contact_id: uuid.UUID, *, include_deleted: bool = False
) -> Contact:
    async with uow.read_only():
        return await CONTACT.read_detached(uow, contact_id, include_deleted=include_deleted)


def _matching(include_deleted: bool, is_active: bool | None, search: bool) -> Any:
    stmt = CONTACT.select_visible_rows(include_deleted=include_deleted)
    if is_active is not None:
        # A literal, not a bound value: IS TRUE takes none, and there are only two.
        stmt = stmt.where(Contact.is_active.is_(is_active))
    if search:
        stmt = stmt.where(search_clause(bindparam(SEARCH), SEARCH_COLUMNS))
    return stmt


PAGES = RowPages(_matching, sort_columns=SORT_COLUMNS, tie_breaker=Contact.id, item=listed)


async def list_contacts(
    uow: UnitOfWork, query: ListQuery, *, is_active: bool | None = None
) -> Slice[ResourceRow]:
    """A page of contacts as rows: the list only shows them."""
    return await PAGES.read(uow, query, (query.include_deleted, is_active, bool(query.search)))


async def update_contact(
    uow: UnitOfWork,
    contact_id: uuid.UUID,
    data: ContactUpdate,
    *,
    expected_version: int | None,
    phone_region: str | None,
) -> Contact:
    """``PATCH``: only the fields sent change."""
    return await _write(uow, contact_id, data, expected_version, phone_region, replace=False)


async def replace_contact(
    uow: UnitOfWork,
    contact_id: uuid.UUID,
    data: ContactCreate,
    *,
    expected_version: int | None,
    phone_region: str | None,
) -> Contact:
    """``PUT``: the whole contact as sent; what it leaves out goes back to its default."""
    return await _write(uow, contact_id, data, expected_version, phone_region, replace=True)


async def _write(
    uow: UnitOfWork,
    contact_id: uuid.UUID,
    data: ContactCreate | ContactUpdate,
    expected_version: int | None,
    phone_region: str | None,
    *,
    replace: bool,
) -> Contact:
    # Checked before the transaction opens, as on create.
    phone = _phone(data.phone, phone_region)
    written: dict[str, Any] = {}

    async def apply(contact: Contact, values: dict[str, Any]) -> None:
        if "phone" in values:
            values["phone"] = phone
        written.update(values)
        await _ensure_unique(uow, values, exclude_id=contact.id)
        for field, value in values.items():
            setattr(contact, field, value)

    write = CONTACT.replace if replace else CONTACT.update
    try:
        return await write(uow, contact_id, data, expected_version=expected_version, apply=apply)
    except IntegrityError as error:
        raise await _explain_integrity_error(uow, error, written, contact_id) from None


async def set_active(
    uow: UnitOfWork, contact_id: uuid.UUID, active: bool, *, expected_version: int | None
) -> Contact:
    async def apply(contact: Contact) -> None:
        contact.is_active = active

    return await CONTACT.change(uow, contact_id, expected_version=expected_version, apply=apply)


async def get_contacts_by_ids(uow: UnitOfWork, ids: list[uuid.UUID]) -> list[Contact]:
    """The live contacts among ``ids``, in the order asked; unknown ids are left out."""
    return await CONTACT.read_by_ids(uow, ids)


async def validate_contact(uow: UnitOfWork, contact_id: uuid.UUID) -> str | None:
    """Why the contact cannot be used for new business, or None when it can."""
    try:
        async with uow.read_only():
            contact = await CONTACT.read_detached(uow, contact_id, include_deleted=True)
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
