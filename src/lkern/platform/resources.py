"""Reading, writing and soft-deleting any versioned, soft-deletable resource.

Each way of reading an item has one method, named for what it gives:
``read_detached`` (a copy, below the ORM, for a use case that only reads it),
``load_attached`` (the item in the unit of work's session, to change it or
follow its relationships), ``read_by_ids`` (many at once) and
``select_visible`` (the statement lists and searches start from).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Insert, Select, Table, bindparam, insert, select
from sqlalchemy.orm import class_mapper

from lkern.events import EventData
from lkern.platform.errors import Conflict, NotFound
from lkern.platform.http import check_version
from lkern.platform.models import ResourceMixin
from lkern.platform.reads import Row
from lkern.platform.schemas import partial_changes, replacement
from lkern.platform.uow import UnitOfWork

R = TypeVar("R", bound=ResourceMixin)


def _visible(model: type[R], *, include_deleted: bool) -> Select[R]:
    return _only_visible(select(model), model, include_deleted=include_deleted)


def _only_visible(stmt: Select[Any], model: type[R], *, include_deleted: bool) -> Select[Any]:
    stmt = stmt.where(model.deletion_audit_id.is_(None))
    if not include_deleted:
        stmt = stmt.where(model.deleted_at.is_(None))
    return stmt


#: A resource's stored columns by name, and ``is_deleted``: an item as a list that only
#: shows its items has it (``ResourceKind.select_visible_rows``), no ORM entity built.
ResourceRow = dict[str, Any]


def listed(row: Row) -> ResourceRow:
    """``row`` with ``is_deleted``, as the entity's property says it."""
    return {**row, "is_deleted": row["deleted_at"] is not None}


# Built once per resource and variant: composing a statement costs more than
# running a cached one, and this one runs on every read of a single item.
_BY_ID: dict[tuple[type[Any], str, bool, bool], Select[Any]] = {}


def _by_id(model: type[R], column: str, *, include_deleted: bool, for_update: bool) -> Select[R]:
    key = (model, column, include_deleted, for_update)
    stmt = _BY_ID.get(key)
    if stmt is None:
        stmt = _visible(model, include_deleted=include_deleted).where(
            getattr(model, column) == bindparam("item_id")
        )
        _BY_ID[key] = stmt = stmt.with_for_update() if for_update else stmt
    return stmt


# An INSERT returning the whole row, built once per resource and set of given columns.
_INSERT: dict[tuple[type[Any], tuple[str, ...]], Insert] = {}


def _detached(model: type[R], row: Mapping[Any, Any]) -> R:
    """An instance holding ``row`` as loaded values, attached to no session.

    Not through the mapped constructor: it would pass each value through the
    attributes' change tracking, which a copy handed back to the caller never
    uses (docs/benchmarks.md)."""
    item: R = class_mapper(model).class_manager.new_instance()
    item.__dict__.update(row)
    return item


def _insert_returning(model: type[R], columns: tuple[str, ...]) -> Insert:
    """The given ``columns`` bound by name (``new_<column>``: a parameter named after a
    column is SQLAlchemy's own), the others left to their defaults, which compiled
    once below the ORM are computed per call as the engine would (reads.py)."""
    key = (model, columns)
    stmt = _INSERT.get(key)
    if stmt is None:
        table: Table = model.__table__  # type: ignore[attr-defined]
        given = {name: bindparam(f"new_{name}", type_=table.c[name].type) for name in columns}
        stmt = _INSERT[key] = insert(table).values(given).returning(*table.c)
    return stmt


@dataclass(frozen=True, slots=True)
class LifecycleEvents(Generic[R]):
    """The events a resource's lifecycle emits, and how to describe the resource in them."""

    updated: type[EventData]
    deleted: type[EventData]
    restored: type[EventData]
    permanently_deleted: type[EventData]
    snapshot: Callable[[R], dict[str, Any]]
    #: For resources with files: some could not be removed (§3).
    deletion_failed: type[EventData] | None = None

    def of(self, event: type[EventData], item: R) -> EventData:
        return event.model_validate(self.snapshot(item))


#: Changes one item loaded for a write, in place; may raise a domain error.
Apply = Callable[[R], Awaitable[None]]
#: Runs in the transaction of a deletion, with the item loaded and before it changes:
#: it may refuse with a domain error, or write what must change with it.
Guard = Callable[[UnitOfWork, R], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ResourceKind(Generic[R]):
    """A resource type, the words used for it in messages and codes, and its events."""

    model: type[R]
    name: str  # "contact"
    events: LifecycleEvents[R] | None = None
    #: The column clients address an item by: its UUID ``id``, or a code of its own
    #: (parts: ``BZQM``). The primary key stays the UUID either way.
    key: str = "id"
    #: Told +1 or -1, in the transaction of the change, whenever a live item comes or
    #: goes (inserted, soft-deleted, restored, hidden by a permanent deletion), for a
    #: service that keeps a count of its live items instead of counting rows.
    tally: Callable[[UnitOfWork, int], Awaitable[None]] | None = None

    async def count_live(self, uow: UnitOfWork, delta: int) -> None:
        """Tell the kind's ``tally`` that ``delta`` live items came (or went)."""
        if self.tally is not None and delta:
            await self.tally(uow, delta)

    def key_of(self, item: R) -> Any:
        """The value clients address ``item`` by."""
        return getattr(item, self.key)

    @property
    def code_stem(self) -> str:
        return self.name.upper().replace(" ", "_")

    def not_found(self, item_id: Any) -> NotFound:
        return NotFound(
            f"{self.name.capitalize()} {item_id} not found.", code=f"{self.code_stem}_NOT_FOUND"
        )

    def select_visible(self, *, include_deleted: bool = False) -> Select[R]:
        """A SELECT of the rows a client may see (never those under permanent
        deletion), for lists and searches to narrow down."""
        return _visible(self.model, include_deleted=include_deleted)

    def select_visible_rows(self, *, include_deleted: bool = False) -> Select[Any]:
        """:meth:`select_visible` as the table's columns, for a list answered from rows
        (``pagination.RowPages``; each row through :func:`listed`)."""
        table: Table = self.model.__table__  # type: ignore[attr-defined]
        return _only_visible(select(*table.c), self.model, include_deleted=include_deleted)

    async def read_detached(
        self, uow: UnitOfWork, item_id: Any, *, include_deleted: bool = False
    ) -> R:
        """A detached copy of the item's row, read below the ORM in a read-only unit of
        work; relationships are not loaded."""
        stmt = _by_id(self.model, self.key, include_deleted=include_deleted, for_update=False)
        row = await uow.fetch_one(stmt, item_id=item_id)
        if row is None:
            raise self.not_found(item_id)
        return _detached(self.model, row)

    async def load_attached(
        self,
        uow: UnitOfWork,
        item_id: Any,
        *,
        include_deleted: bool = False,
        lock: bool = False,
    ) -> R:
        """The item in the unit of work's session, relationships loaded as mapped: to
        change it (the version counter guards the write) or to follow its relationships.
        ``lock`` holds its row (``FOR UPDATE``) until the transaction ends."""
        stmt = _by_id(self.model, self.key, include_deleted=include_deleted, for_update=lock)
        item: R | None = (await uow.session.scalars(stmt, {"item_id": item_id})).one_or_none()
        if item is None:
            raise self.not_found(item_id)
        return item

    async def read_by_ids(self, uow: UnitOfWork, ids: Sequence[Any]) -> list[R]:
        """The live items among ``ids`` (values of ``key``), in the order asked, each
        once; unknown ids are left out. In its own read-only unit of work."""
        if not ids:
            return []
        column = getattr(self.model, self.key)
        async with uow.read_only():
            stmt = self.select_visible().where(column.in_(ids))
            found = {self.key_of(item): item for item in await uow.session.scalars(stmt)}
        return [found[item_id] for item_id in dict.fromkeys(ids) if item_id in found]

    async def insert(self, uow: UnitOfWork, values: dict[str, Any]) -> R:
        """Insert a new item in the unit of work's transaction; returns it as stored.

        One Core statement, the row coming back with its defaults, rather than
        the ORM's unit-of-work flush of a single new object, which costs far
        more (docs/benchmarks.md); in a ``uow.direct()`` transaction it runs
        below SQLAlchemy altogether. The item returned is detached, so further
        changes to it within the same unit of work go through ``load_attached``.
        """
        stmt = _insert_returning(self.model, tuple(sorted(values)))
        row = await uow.row(stmt, **{f"new_{name}": value for name, value in values.items()})
        assert row is not None
        await self.count_live(uow, 1)
        return _detached(self.model, row)

    async def change(
        self,
        uow: UnitOfWork,
        item_id: Any,
        *,
        expected_version: int | None,
        apply: Apply[R],
        event: Callable[[R], EventData] | None = None,
    ) -> R:
        """Change a live item in its own transaction: ``If-Match`` checked first (412),
        and a concurrent writer refused by the version counter (409) at the flush.

        When ``apply`` really changed something, the kind's ``updated`` event is
        emitted (or ``event``'s, for a change with an event of its own).
        """
        async with uow:
            item = await self.load_attached(uow, item_id)
            check_version(item.version, expected_version)
            await apply(item)
            if uow.session.is_modified(item):
                await uow.session.flush()
                if event is not None:
                    uow.emit(event(item), item.id)
                elif self.events is not None:
                    uow.emit(self.events.of(self.events.updated, item), item.id)
            await uow.commit()
            return item

    async def update(
        self,
        uow: UnitOfWork,
        item_id: Any,
        patch: BaseModel,
        *,
        expected_version: int | None,
        apply: Callable[[R, dict[str, Any]], Awaitable[None]],
    ) -> R:
        """``PATCH``: ``apply`` is given only the fields the body names."""
        changes = partial_changes(patch)
        return await self.change(
            uow, item_id, expected_version=expected_version, apply=lambda item: apply(item, changes)
        )

    async def replace(
        self,
        uow: UnitOfWork,
        item_id: Any,
        document: BaseModel,
        *,
        expected_version: int | None,
        apply: Callable[[R, dict[str, Any]], Awaitable[None]],
    ) -> R:
        """``PUT``: ``apply`` is given every field of the full document, an omitted
        optional one at its default, so the write resets it."""
        values = replacement(document)
        return await self.change(
            uow, item_id, expected_version=expected_version, apply=lambda item: apply(item, values)
        )

    async def soft_delete(
        self,
        uow: UnitOfWork,
        item_id: Any,
        *,
        expected_version: int | None,
        guard: Guard[R] | None = None,
    ) -> R:
        """Soft-delete in its own transaction; deleting a deleted item is a 409."""
        async with uow:
            item = await self.load_attached(uow, item_id, include_deleted=True)
            if guard is not None:
                await guard(uow, item)
            self._mark_deleted(item, expected_version)
            await uow.session.flush()
            await self.count_live(uow, -1)
            if self.events is not None:
                uow.emit(self.events.of(self.events.deleted, item), item.id)
            await uow.commit()
            return item

    async def restore(self, uow: UnitOfWork, item_id: Any, *, expected_version: int | None) -> R:
        """Undo a soft delete in its own transaction; restoring a live item is a 409."""
        async with uow:
            item = await self.load_attached(uow, item_id, include_deleted=True)
            self._mark_restored(item, expected_version)
            await uow.session.flush()
            await self.count_live(uow, 1)
            if self.events is not None:
                uow.emit(self.events.of(self.events.restored, item), item.id)
            await uow.commit()
            return item

    def _mark_deleted(self, item: R, expected_version: int | None) -> None:
        check_version(item.version, expected_version)
        if item.is_deleted:
            raise Conflict(
                f"{self.name.capitalize()} {self.key_of(item)} is already deleted.",
                code=f"{self.code_stem}_ALREADY_DELETED",
            )
        item.mark_deleted()

    def _mark_restored(self, item: R, expected_version: int | None) -> None:
        check_version(item.version, expected_version)
        if not item.is_deleted:
            raise Conflict(
                f"{self.name.capitalize()} {self.key_of(item)} is not deleted.",
                code=f"{self.code_stem}_NOT_DELETED",
            )
        item.mark_restored()
