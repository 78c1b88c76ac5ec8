"""${whose} use cases; each owns its transaction through the unit of work."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam

from lkern.events.${name} import (
% if files:
    ${Noun}AttachmentAdded,
    ${Noun}AttachmentRemoved,
% endif
    ${Noun}Created,
    ${Noun}Data,
    ${Noun}Deleted,
% if files:
    ${Noun}DeletionFailed,
% endif
    ${Noun}PermanentlyDeleted,
    ${Noun}Restored,
    ${Noun}Updated,
)
% if prefix:
from lkern.platform.codes import next_code
% endif
from lkern.platform.pagination import (
    SEARCH,
    ListQuery,
    RowPages,
    Slice,
    search_clause,
    sort_columns,
)
from lkern.platform.resources import LifecycleEvents, ResourceKind, ResourceRow, listed
% if files:
from lkern.platform.storage.attachments import FileSlot
% endif
from lkern.platform.uow import UnitOfWork
from lkern.${name}.enums import ${Noun}SortField
from lkern.${name}.models import SEARCHED_COLUMNS, ${Noun}
from lkern.${name}.rules import ${"CODE_PREFIX, " if prefix else ""}normalise_name
from lkern.${name}.schemas import ${Noun}Create, ${Noun}Update


def snapshot(${noun}: ${Noun}) -> dict[str, Any]:
    """The ${noun}'s public fields, as every ${name} event carries them."""
% if files:
    fields = {
        field: getattr(${noun}, field)
        for field in ${Noun}Data.model_fields
        if field != "attachment_count"
    }
    return {**fields, "attachment_count": len(${noun}.attachments or [])}
% else:
    return {field: getattr(${noun}, field) for field in ${Noun}Data.model_fields}
% endif


${NOUN} = ResourceKind(
    ${Noun},
    "${noun}",
    events=LifecycleEvents(
        updated=${Noun}Updated,
        deleted=${Noun}Deleted,
        restored=${Noun}Restored,
        permanently_deleted=${Noun}PermanentlyDeleted,
% if files:
        deletion_failed=${Noun}DeletionFailed,
% endif
        snapshot=snapshot,
    ),
)
% if files:
ATTACHMENTS = FileSlot(
    ${NOUN},
    attribute="attachments",
    service="${name}",
    noun="attachment",
    added=${Noun}AttachmentAdded,
    removed=${Noun}AttachmentRemoved,
)
% endif
SORT_COLUMNS = sort_columns(${Noun}SortField, ${Noun})
SEARCH_COLUMNS = tuple(getattr(${Noun}, column) for column in SEARCHED_COLUMNS)


async def create_${noun}(uow: UnitOfWork, data: ${Noun}Create) -> ${Noun}:
    values = {**data.model_dump(), "name": normalise_name(data.name)}
% if files:
    values["attachments"] = []
% endif
    async with uow:
% if prefix:
        values["code"] = await next_code(uow.session, CODE_PREFIX)
% endif
        ${noun} = await ${NOUN}.insert(uow, values)
        uow.emit(${Noun}Created(**snapshot(${noun})), ${noun}.id)
        await uow.commit()
        return ${noun}


async def get_${noun}(
    uow: UnitOfWork, ${noun}_id: uuid.UUID, *, include_deleted: bool = False
) -> ${Noun}:
    async with uow.read_only():
        return await ${NOUN}.read_detached(uow, ${noun}_id, include_deleted=include_deleted)


def _matching(include_deleted: bool, is_active: bool | None, search: bool) -> Any:
    stmt = ${NOUN}.select_visible_rows(include_deleted=include_deleted)
    if is_active is not None:
        # A literal, not a bound value: IS TRUE takes none, and there are only two.
        stmt = stmt.where(${Noun}.is_active.is_(is_active))
    if search:
        stmt = stmt.where(search_clause(bindparam(SEARCH), SEARCH_COLUMNS))
    return stmt


PAGES = RowPages(
    _matching,
    sort_columns=SORT_COLUMNS,
    tie_breaker=${Noun}.id,
    item=listed,
)


async def list_${name}(
    uow: UnitOfWork, query: ListQuery, *, is_active: bool | None = None
) -> Slice[ResourceRow]:
    """A page of ${name} as rows: the list only shows them."""
    shape = (query.include_deleted, is_active, bool(query.search))
    return await PAGES.read(uow, query, shape)


async def update_${noun}(
    uow: UnitOfWork, ${noun}_id: uuid.UUID, data: ${Noun}Update, *, expected_version: int | None
) -> ${Noun}:
    """``PATCH``: only the fields sent change."""
    return await ${NOUN}.update(
        uow, ${noun}_id, data, expected_version=expected_version, apply=_apply
    )


async def replace_${noun}(
    uow: UnitOfWork, ${noun}_id: uuid.UUID, data: ${Noun}Create, *, expected_version: int | None
) -> ${Noun}:
    """``PUT``: the whole ${noun} as sent; what it leaves out goes back to its default."""
    return await ${NOUN}.replace(
        uow, ${noun}_id, data, expected_version=expected_version, apply=_apply
    )


async def _apply(${noun}: ${Noun}, values: dict[str, Any]) -> None:
    if values.get("name") is not None:
        values["name"] = normalise_name(values["name"])
    for field, value in values.items():
        setattr(${noun}, field, value)
% if grpc:


async def get_${name}_by_ids(uow: UnitOfWork, ids: list[uuid.UUID]) -> list[${Noun}]:
    """The live ${name} among ``ids``, in the order asked; unknown ids are left out."""
    return await ${NOUN}.read_by_ids(uow, ids)
% endif
