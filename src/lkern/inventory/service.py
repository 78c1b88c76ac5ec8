"""Inventory's use cases; each owns its transaction through the unit of work.

Stock is never changed by reading a quantity and writing it back: every
change is a conditional statement (``quantity > n``, ``quantity = n``, an
``ON CONFLICT`` that only adds to the same part), whose row count says
whether it applied. Locks are taken in one order everywhere (boxes by
number, then locations, then parts), so concurrent changes queue instead of
deadlocking; SQLite serialises writers anyway (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    DateTime,
    Integer,
    Select,
    Table,
    and_,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError

from lkern.events.inventory import (
    BuiltPart,
    PartCreated,
    PartDeleted,
    PartDeletionFailed,
    PartDocumentAdded,
    PartDocumentRemoved,
    PartPermanentlyDeleted,
    PartRestored,
    PartUpdated,
    ProjectBuilt,
    StockChanged,
)
from lkern.inventory import rules
from lkern.inventory.enums import StockChangeKind
from lkern.inventory.models import (
    Box,
    Location,
    Part,
    Project,
    StockChange,
    Tally,
    search_text_of,
)
from lkern.inventory.schemas import (
    BoxCreate,
    BoxUpdate,
    PartCreate,
    PartUpdate,
    ProjectCreate,
    ProjectUpdate,
    StockAdd,
    StockMove,
    StockRemove,
)
from lkern.platform.db import conflict_insert, utcnow
from lkern.platform.enums import SortOrder
from lkern.platform.errors import Conflict, NotFound, Unprocessable
from lkern.platform.http import check_version
from lkern.platform.ids import new_id
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.pagination import (
    SEARCH,
    ListQuery,
    PageParams,
    RowPages,
    Slice,
    like_pattern,
    paginate,
)
from lkern.platform.reads import AnySelect, one_of
from lkern.platform.resources import LifecycleEvents, ResourceKind, ResourceRow, listed
from lkern.platform.schemas import partial_changes, replacement
from lkern.platform.storage.attachments import FileSlot
from lkern.platform.uow import UnitOfWork

SERVICE = "inventory"
K = StockChangeKind

EVENT_FIELDS = tuple(
    name for name in PartCreated.model_fields if name not in {"id", "document_count", "previous"}
)


def snapshot(part: Part) -> dict[str, Any]:
    """The part's public fields, as every part event carries them."""
    fields = {name: getattr(part, name) for name in EVENT_FIELDS}
    return {**fields, "id": part.code, "document_count": len(part.documents or [])}


#: The tally of live parts (``tallies``), which the parts gauge reads.
PARTS_TALLY = "parts"


async def tally_parts(uow: UnitOfWork, delta: int) -> None:
    """Change the count of live parts in the change's own transaction (every path by
    which a part comes or goes passes here: ``PART.tally``, and the import)."""
    # An upsert: the migration writes the row, but a database emptied by hand has none.
    add = conflict_insert(Tally.__table__, uow.dialect).values(name=PARTS_TALLY, value=delta)
    await uow.session.execute(
        add.on_conflict_do_update(
            index_elements=["name"], set_={"value": Tally.__table__.c.value + add.excluded.value}
        )
    )


PART = ResourceKind(
    Part,
    "part",
    events=LifecycleEvents(
        updated=PartUpdated,
        deleted=PartDeleted,
        restored=PartRestored,
        permanently_deleted=PartPermanentlyDeleted,
        deletion_failed=PartDeletionFailed,
        snapshot=snapshot,
    ),
    key="code",
    tally=tally_parts,
)
DOCUMENTS = FileSlot(
    PART,
    attribute="documents",
    service=SERVICE,
    noun="document",
    added=PartDocumentAdded,
    removed=PartDocumentRemoved,
)
PROJECT = ResourceKind(Project, "project")

PART_SORT: dict[str, Any] = {
    "id": Part.code,
    "description": Part.description,
    "category": Part.category,
    "total_quantity": Part.total_quantity,
    "created_at": Part.created_at,
}
PROJECT_SORT: dict[str, Any] = {"name": Project.name, "created_at": Project.created_at}


@dataclass(frozen=True, slots=True)
class StockedPart:
    """A part and the locations that hold it, in box and location order."""

    part: Part
    locations: list[tuple[int, int, int]]


@dataclass(frozen=True, slots=True)
class ListedPart:
    """A part as a list shows it: its row (no entity: the list changes nothing) and the
    locations that hold it, in box and location order."""

    part: ResourceRow
    locations: list[tuple[int, int, int]]


def refuse_if_stocked(part: Part) -> None:
    """A part with stock cannot be deleted for good (checked under the part's row lock,
    which every stock change takes too)."""
    if part.total_quantity > 0:
        raise Conflict(
            f"Part {part.code} still has {part.total_quantity} in stock; remove it first.",
            code="PART_HAS_STOCK",
        )


# --- parts ----------------------------------------------------------------------------


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    """Schema values as the columns hold them."""
    if values.get("seller_link") is not None:
        values["seller_link"] = str(values["seller_link"])
    return values


async def _free_ids(uow: UnitOfWork, wanted: int) -> list[str]:
    """``wanted`` part ids no part has, drawn at random (see rules.ID_ATTEMPTS)."""
    found: list[str] = []
    for _ in range(rules.ID_ATTEMPTS):
        candidates = {rules.new_part_id() for _ in range(max(wanted - len(found), 1) * 2)}
        candidates -= set(found)
        taken = set(
            (await uow.session.scalars(select(Part.code).where(Part.code.in_(candidates)))).all()
        )
        found += sorted(candidates - taken)[: wanted - len(found)]
        if len(found) >= wanted:
            return found
    raise Conflict(
        f"No free part id found in {rules.ID_ATTEMPTS} tries: the {rules.ID_SPACE:,} "
        "ids are nearly all taken; delete unused parts for good to free some.",
        code="PART_IDS_EXHAUSTED",
    )


async def create_part(uow: UnitOfWork, data: PartCreate) -> StockedPart:
    for attempt in range(3):
        try:
            async with uow:
                (code,) = await _free_ids(uow, 1)
                part = await insert_part(uow, code, data.model_dump())
                await uow.commit()
                return StockedPart(part, [])
        except IntegrityError:
            # Another create took the same id between our look and our insert.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def insert_part(uow: UnitOfWork, code: str, values: dict[str, Any]) -> Part:
    """Insert a part under ``code``, with its ``part_created`` event, in ``uow``'s
    transaction; ``values`` as ``PartCreate`` has them, defaults filled in."""
    values = {**PartCreate.model_validate(values).model_dump(), **values}
    values = _columns({**values, "code": code, "documents": [], "total_quantity": 0})
    values["search_text"] = search_text_of(values)
    part = await PART.insert(uow, values)
    uow.emit(PartCreated(**snapshot(part)), part.id)
    return part


# Per dialect: the codes are bound as one array on PostgreSQL (``= ANY``), so the
# statement is compiled once whatever the page's length.
_LOCATIONS: dict[str, AnySelect] = {}


def _locations_stmt(dialect: str) -> AnySelect:
    found = _LOCATIONS.get(dialect)
    if found is None:
        stmt: AnySelect = select(
            Location.part_id, Location.box_no, Location.loc_no, Location.quantity
        )
        stmt = stmt.where(one_of(Location.part_id, "codes", dialect))
        found = _LOCATIONS[dialect] = stmt.order_by(Location.box_no, Location.loc_no)
    return found


def _held(
    codes: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> dict[str, list[tuple[int, int, int]]]:
    held: dict[str, list[tuple[int, int, int]]] = {code: [] for code in codes}
    for row in rows:
        held[row["part_id"]].append((row["box_no"], row["loc_no"], row["quantity"]))
    return held


async def _locations_of(
    uow: UnitOfWork, codes: Sequence[str]
) -> dict[str, list[tuple[int, int, int]]]:
    if not codes:
        return {}
    return _held(codes, await uow.rows(_locations_stmt(uow.dialect), codes=list(codes)))


async def _stocked(uow: UnitOfWork, part: Part) -> StockedPart:
    rows = await uow.rows(HELD, code=part.code)
    return StockedPart(part, [(row["box_no"], row["loc_no"], row["quantity"]) for row in rows])


async def get_part(uow: UnitOfWork, code: str, *, include_deleted: bool = False) -> StockedPart:
    async with uow:
        part = await PART.load_attached(uow, code, include_deleted=include_deleted)
        return await _stocked(uow, part)


async def stocked(uow: UnitOfWork, part: Part) -> StockedPart:
    """``part`` with its locations, in a unit of work of its own."""
    async with uow:
        return await _stocked(uow, part)


async def get_parts_by_ids(uow: UnitOfWork, codes: Sequence[str]) -> list[Part]:
    return await PART.read_by_ids(uow, codes)


def search_filter(dialect: str) -> Any:
    """Parts whose searched text holds the pattern bound as ``SEARCH`` (a lower-cased
    ``like_pattern``), on either backend: a trigram-indexed LIKE on PostgreSQL, the
    FTS5 trigram table on SQLite."""
    if dialect == "postgresql":
        return Part.search_text.like(bindparam(SEARCH), escape="\\")
    return Part.code.in_(
        select(text("code"))
        .select_from(text("parts_search"))
        .where(text(f"search_text LIKE :{SEARCH} ESCAPE '\\'"))
    )


def _has_tag(dialect: str) -> Any:
    """Parts tagged with the value bound as ``tag`` (on PostgreSQL, as ``[tag]``)."""
    if dialect == "postgresql":
        return type_coerce(Part.tags, JSONB).contains(bindparam("tag", type_=JSONB))
    return text("EXISTS (SELECT 1 FROM json_each(parts.tags) WHERE json_each.value = :tag)")


def _matching(
    dialect: str,
    include_deleted: bool,
    category: bool,
    tag: bool,
    in_stock: bool | None,
    search: bool,
) -> Select[Any]:
    stmt = PART.select_visible_rows(include_deleted=include_deleted)
    if category:
        stmt = stmt.where(Part.category == bindparam("category"))
    if in_stock is True:
        stmt = stmt.where(Part.total_quantity > 0)
    elif in_stock is False:
        stmt = stmt.where(Part.total_quantity == 0)
    if tag:
        stmt = stmt.where(_has_tag(dialect))
    if search:
        stmt = stmt.where(search_filter(dialect))
    return stmt


PART_PAGES = RowPages(_matching, sort_columns=PART_SORT, tie_breaker=Part.code, item=listed)


async def list_parts(
    uow: UnitOfWork,
    query: ListQuery,
    *,
    category: str | None = None,
    tag: str | None = None,
    in_stock: bool | None = None,
) -> Slice[ListedPart]:
    """A page of parts as rows, with their locations, in one transaction."""
    dialect = uow.dialect
    params: dict[str, Any] = {}
    if category is not None:
        params["category"] = category
    if tag is not None:
        params["tag"] = [tag] if dialect == "postgresql" else tag
    if query.search:
        params[SEARCH] = like_pattern(query.search.lower())
    shape = (dialect, query.include_deleted, category is not None, tag is not None, in_stock)
    async with uow.direct():
        found = await PART_PAGES.fetch(uow, query, (*shape, bool(query.search)), params)
        codes = [row["code"] for row in found.items]
        rows = await uow.rows(_locations_stmt(dialect), codes=codes) if codes else []
    held = _held(codes, rows)
    return found.map(lambda row: ListedPart(row, held[row["code"]]))


async def update_part(
    uow: UnitOfWork, code: str, data: PartUpdate, *, expected_version: int | None
) -> StockedPart:
    return await _write(uow, code, _columns(partial_changes(data)), expected_version)


async def replace_part(
    uow: UnitOfWork, code: str, data: PartCreate, *, expected_version: int | None
) -> StockedPart:
    return await _write(uow, code, _columns(replacement(data)), expected_version)


async def _write(
    uow: UnitOfWork, code: str, values: dict[str, Any], expected_version: int | None
) -> StockedPart:
    previous: dict[str, Any] = {}

    async def apply(part: Part) -> None:
        for field, value in values.items():
            if getattr(part, field) != value:
                previous[field] = getattr(part, field)
                setattr(part, field, value)

    def updated(part: Part) -> PartUpdated:
        return PartUpdated(**snapshot(part), previous=previous)

    part = await PART.change(
        uow, code, expected_version=expected_version, apply=apply, event=updated
    )
    return await stocked(uow, part)


# --- boxes ----------------------------------------------------------------------------


async def create_box(uow: UnitOfWork, data: BoxCreate) -> Box:
    for attempt in range(5):
        try:
            async with uow:
                last = await uow.session.scalar(select(func.max(Box.box_no)))
                box = Box(box_no=(last or 0) + 1, **data.model_dump())
                uow.session.add(box)
                await uow.session.flush()
                await uow.commit()
                return box
        except IntegrityError:
            # A concurrent create took the number; take the next one.
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def _box_not_found(box_no: int) -> NotFound:
    return NotFound(f"Box {box_no} not found.", code="BOX_NOT_FOUND")


async def list_boxes(uow: UnitOfWork, params: PageParams) -> Slice[Box]:
    query = ListQuery(params.skip, params.limit, None, "box_no", SortOrder.ASC, False)
    async with uow:
        return await paginate(
            uow.session,
            select(Box),
            query,
            sort_columns={"box_no": Box.box_no},
            tie_breaker=Box.box_no,
        )


async def get_box(uow: UnitOfWork, box_no: int) -> Box:
    async with uow:
        box = await uow.session.get(Box, box_no)
        if box is None:
            raise _box_not_found(box_no)
        return box


async def update_box(
    uow: UnitOfWork, box_no: int, data: BoxUpdate, *, expected_version: int | None
) -> Box:
    async with uow:
        box = await _lock_box(uow, box_no)
        check_version(box.version, expected_version)
        changes = partial_changes(data)
        capacity = changes.get("capacity")
        if capacity is not None and capacity < box.capacity:
            highest = await uow.session.scalar(
                select(func.max(Location.loc_no)).where(Location.box_no == box_no)
            )
            if highest is not None and highest > capacity:
                raise Conflict(
                    f"Box {box_no} holds stock at location {highest}; it cannot shrink "
                    f"to {capacity} locations.",
                    code="BOX_OCCUPIED",
                )
        for field, value in changes.items():
            setattr(box, field, value)
        await uow.session.flush()
        await uow.commit()
        return box


async def delete_box(uow: UnitOfWork, box_no: int, *, expected_version: int | None) -> None:
    async with uow:
        box = await _lock_box(uow, box_no)
        check_version(box.version, expected_version)
        if box.used:
            raise Conflict(
                f"Box {box_no} holds stock in {box.used} locations.", code="BOX_OCCUPIED"
            )
        await uow.session.delete(box)
        await uow.session.flush()
        await uow.commit()


async def _lock_box(uow: UnitOfWork, box_no: int) -> Box:
    box = await uow.session.scalar(select(Box).where(Box.box_no == box_no).with_for_update())
    if box is None:
        raise _box_not_found(box_no)
    return box


async def box_locations(uow: UnitOfWork, box_no: int) -> list[dict[str, Any]]:
    async with uow:
        box = await uow.session.get(Box, box_no)
        if box is None:
            raise _box_not_found(box_no)
        rows = await uow.session.execute(
            select(Location.loc_no, Location.part_id, Part.description, Location.quantity)
            .join(Part, Part.code == Location.part_id)
            .where(Location.box_no == box_no)
        )
        held = {row.loc_no: row for row in rows.all()}
    return [
        {
            "loc_no": loc_no,
            "part_id": held[loc_no].part_id if loc_no in held else None,
            "description": held[loc_no].description if loc_no in held else None,
            "quantity": held[loc_no].quantity if loc_no in held else 0,
        }
        for loc_no in range(1, box.capacity + 1)
    ]


# --- stock ----------------------------------------------------------------------------
#
# A stock change is a handful of conditional statements and nothing else, so it runs
# them below the ORM (``uow.direct()``: compiled once, on the driver), with the values
# bound by name. The bound names are never a column's: for an UPDATE, SQLAlchemy takes
# a parameter named after a column for a value to SET.

BOXES = cast(Table, Box.__table__)
LOCATIONS = cast(Table, Location.__table__)
PARTS = cast(Table, Part.__table__)
HISTORY = cast(Table, StockChange.__table__)
NOW = bindparam("now", type_=DateTime(timezone=True))
AT_PLACE = and_(LOCATIONS.c.box_no == bindparam("box"), LOCATIONS.c.loc_no == bindparam("loc"))
AT_PART = and_(AT_PLACE, LOCATIONS.c.part_id == bindparam("code"))
LIVE = and_(PARTS.c.deleted_at.is_(None), PARTS.c.deletion_audit_id.is_(None))

#: One box locked by the UPDATE that keeps its pieces (an UPDATE locks its row).
LOCK_BOX = (
    update(BOXES)
    .where(BOXES.c.box_no == bindparam("box"))
    .values(quantity=BOXES.c.quantity + bindparam("pieces"), updated_at=NOW)
    .returning(BOXES.c.box_no, BOXES.c.capacity)
)
#: Several boxes locked in number order (asyncpg binds a list as an array, SQLite as IN).
LOCK_BOXES = {
    dialect: select(BOXES.c.box_no, BOXES.c.capacity)
    .where(wanted)
    .order_by(BOXES.c.box_no)
    .with_for_update()
    for dialect, wanted in (
        ("postgresql", BOXES.c.box_no == any_(bindparam("boxes", type_=ARRAY(Integer)))),
        ("sqlite", BOXES.c.box_no.in_(bindparam("boxes", expanding=True))),
    )
}
CHANGE_BOX = (
    update(BOXES)
    .where(BOXES.c.box_no == bindparam("box"))
    .values(
        quantity=BOXES.c.quantity + bindparam("pieces"),
        used=BOXES.c.used + bindparam("locations"),
        updated_at=NOW,
    )
)
LIVE_PART = select(PARTS.c.id, PARTS.c.code, PARTS.c.version).where(
    PARTS.c.code == bindparam("code"), LIVE
)
HOLDER = select(LOCATIONS.c.part_id, LOCATIONS.c.quantity).where(AT_PLACE)


def _put_statement(dialect: str) -> Any:
    """Into a free location, or onto the same part: an upsert whose update applies only
    where the location holds this part (no row back: LOCATION_OCCUPIED)."""
    upsert = conflict_insert(LOCATIONS, dialect).values(
        box_no=bindparam("box"),
        loc_no=bindparam("loc"),
        part_id=bindparam("code"),
        quantity=bindparam("amount"),
    )
    return upsert.on_conflict_do_update(
        index_elements=["box_no", "loc_no"],
        set_={"quantity": LOCATIONS.c.quantity + upsert.excluded.quantity},
        where=LOCATIONS.c.part_id == upsert.excluded.part_id,
    ).returning(LOCATIONS.c.quantity)


PUT = {dialect: _put_statement(dialect) for dialect in ("postgresql", "sqlite")}
#: Only where it holds more than is taken; where it holds exactly that, EMPTY frees it.
TAKE = (
    update(LOCATIONS)
    .where(AT_PART, LOCATIONS.c.quantity > bindparam("amount"))
    .values(quantity=LOCATIONS.c.quantity - bindparam("amount"))
    .returning(LOCATIONS.c.quantity)
)
EMPTY = delete(LOCATIONS).where(AT_PART, LOCATIONS.c.quantity == bindparam("amount"))
#: The part's total and version in one statement (its row lock comes with it), the
#: part coming back as the statement left it; the second only at the version If-Match names.
BUMP_TOTAL, BUMP_TOTAL_AT = (
    update(PARTS)
    .where(PARTS.c.id == bindparam("part"), *condition)
    .values(
        total_quantity=PARTS.c.total_quantity + bindparam("delta"),
        version=PARTS.c.version + 1,
        updated_at=NOW,
    )
    .returning(*PARTS.c)
    for condition in ((), (PARTS.c.version == bindparam("expected"),))
)
PART_VERSION = select(PARTS.c.version).where(PARTS.c.id == bindparam("part"))
RECORD = insert(HISTORY).values(
    {column.name: bindparam(f"new_{column.name}", type_=column.type) for column in HISTORY.c}
)
HELD = (
    select(LOCATIONS.c.box_no, LOCATIONS.c.loc_no, LOCATIONS.c.quantity)
    .where(LOCATIONS.c.part_id == bindparam("code"))
    .order_by(LOCATIONS.c.box_no, LOCATIONS.c.loc_no)
)


async def _lock_boxes(
    uow: UnitOfWork,
    places: Sequence[tuple[int, int]],
    fields: Sequence[str] = (),
    pieces: Mapping[int, int] | None = None,
) -> None:
    """Lock the boxes of ``places`` in number order and check each location exists;
    ``fields`` names the body field of each place's box, for the 422. ``pieces`` is what
    the change adds to (or takes from) each box, kept in the boxes with the lock: for one
    box in the same statement (an UPDATE locks its row too), so an addition or removal
    pays nothing for it."""
    wanted = sorted({box_no for box_no, _ in places})
    pieces = pieces or {}
    now = utcnow()
    if len(wanted) == 1 and pieces:
        rows = await uow.rows(LOCK_BOX, box=wanted[0], pieces=pieces.get(wanted[0], 0), now=now)
    else:
        rows = await uow.rows(LOCK_BOXES[uow.dialect], boxes=wanted)
    capacity = {row["box_no"]: row["capacity"] for row in rows}
    for index, (box_no, loc_no) in enumerate(places):
        field = fields[index] if index < len(fields) else "body.box_no"
        if box_no not in capacity:
            raise Unprocessable(f"Box {box_no} not found.", field=field, code="BOX_NOT_FOUND")
        if loc_no > capacity[box_no]:
            raise Unprocessable(
                f"Box {box_no} has locations 1 to {capacity[box_no]}, not {loc_no}.",
                field=field.replace("box_no", "loc_no"),
                code="LOCATION_INVALID",
            )
    if len(wanted) > 1:
        for box_no, change in sorted(pieces.items()):
            if change:
                await change_box(uow, box_no, change, 0)


async def _live_part(
    uow: UnitOfWork, code: str, expected_version: int | None = None
) -> tuple[uuid.UUID, str]:
    """The live part's key and id; If-Match is checked here first (a 412 before any
    409 the change itself might meet), and again by the write (``_bump_total``)."""
    row = await uow.row(LIVE_PART, code=code)
    if row is None:
        raise PART.not_found(code)
    check_version(row["version"], expected_version)
    return row["id"], row["code"]


async def _put(uow: UnitOfWork, code: str, box_no: int, loc_no: int, quantity: int) -> int:
    """Add ``quantity`` of part ``code`` to a location: into a free one, or onto the same
    part; a location holding another part is LOCATION_OCCUPIED. Returns what it holds."""
    row = await uow.row(PUT[uow.dialect], box=box_no, loc=loc_no, code=code, amount=quantity)
    if row is None:
        holder = await uow.row(HOLDER, box=box_no, loc=loc_no)
        part_id = holder["part_id"] if holder is not None else None
        raise Conflict(
            f"Location {box_no}/{loc_no} holds part {part_id}.",
            code="LOCATION_OCCUPIED",
            extra={"box_no": box_no, "loc_no": loc_no, "part_id": part_id},
        )
    held = int(row["quantity"])
    if held == quantity:  # it was free
        await change_box(uow, box_no, 0, 1)
    return held


async def change_box(uow: UnitOfWork, box_no: int, pieces: int, locations: int) -> None:
    """Keep a box's pieces and occupied locations with a change of its stock (its row is
    locked already: every stock change locks its boxes first). ``_put`` and ``_take``
    keep the locations; the pieces are the caller's (``_lock_boxes``' ``pieces``)."""
    await uow.execute(CHANGE_BOX, box=box_no, pieces=pieces, locations=locations, now=utcnow())


async def _take(uow: UnitOfWork, code: str, box_no: int, loc_no: int, quantity: int) -> int:
    """Take ``quantity`` of part ``code`` from a location, only if it holds that much;
    otherwise INSUFFICIENT_STOCK. A location emptied is freed. Returns what is left."""
    place = {"box": box_no, "loc": loc_no, "code": code, "amount": quantity}
    left = await uow.row(TAKE, **place)
    if left is not None:
        return int(left["quantity"])
    if await uow.execute(EMPTY, **place) == 1:
        await change_box(uow, box_no, 0, -1)
        return 0
    held = await uow.row(HOLDER, box=box_no, loc=loc_no)
    has = held["quantity"] if held is not None and held["part_id"] == code else 0
    raise Conflict(
        f"Location {box_no}/{loc_no} holds {has} of part {code}, not {quantity}.",
        code="INSUFFICIENT_STOCK",
        extra={
            "shortfalls": [
                {
                    "part_id": code,
                    "box_no": box_no,
                    "loc_no": loc_no,
                    "required": quantity,
                    "available": has,
                    "shortfall": quantity - has,
                }
            ]
        },
    )


async def _bump_total(
    uow: UnitOfWork, part_id: uuid.UUID, delta: int, expected_version: int | None = None
) -> Part:
    """Change the part's total by ``delta`` in one statement (its row lock comes with it);
    with ``expected_version`` (If-Match) only at that version, else a 412. Answers the
    part as the statement left it (detached), so nothing reads it again."""
    values = {"part": part_id, "delta": delta, "now": utcnow()}
    if expected_version is None:
        row = await uow.row(BUMP_TOTAL, **values)
    else:
        row = await uow.row(BUMP_TOTAL_AT, **values, expected=expected_version)
    if row is None:
        current = await uow.row(PART_VERSION, part=part_id)
        check_version(int(current["version"] if current else 0), expected_version)
        raise AssertionError("a live part's row is always there")
    return Part(**row)


@dataclass(frozen=True, slots=True)
class StockEntry:
    """One location's change: what the history row and the ``stock_changed`` event say."""

    code: str
    part_id: uuid.UUID
    kind: StockChangeKind
    delta: int
    box_no: int
    loc_no: int
    held: int


def count_changes(metrics: ServiceMetrics | None, kinds: Counter[StockChangeKind]) -> None:
    """Committed stock changes by kind, counted by each replica as they happen (Prometheus
    adds the replicas up); a count over the history on every scrape would grow with it."""
    if metrics is None:
        return
    counter = metrics.counter(
        "lkern_inventory_stock_changes", "Location quantity changes committed, by kind.", ["kind"]
    )
    for kind, entries in kinds.items():
        counter.labels(kind.value).inc(entries)


async def record_changes(
    uow: UnitOfWork,
    entries: Sequence[StockEntry],
    totals: dict[str, int],
    *,
    reason: str | None,
    user_id: str | None,
) -> None:
    """History rows and ``stock_changed`` events, one per location changed, counted in
    the metrics once committed: every stock change, whatever its path, passes here."""
    if not entries:
        return
    kinds = Counter(entry.kind for entry in entries)
    uow.after_commit(lambda: count_changes(uow.metrics, kinds))
    now = utcnow()
    await uow.execute_many(
        RECORD,
        [
            {
                "new_id": new_id(),
                "new_part_id": entry.code,
                "new_kind": entry.kind.value,
                "new_delta": entry.delta,
                "new_box_no": entry.box_no,
                "new_loc_no": entry.loc_no,
                "new_reason": reason,
                "new_user_id": user_id,
                "new_at": now,
            }
            for entry in entries
        ],
    )
    for entry in entries:
        uow.emit(
            StockChanged(
                part_id=entry.code,
                box_no=entry.box_no,
                loc_no=entry.loc_no,
                delta=entry.delta,
                kind=entry.kind.value,
                quantity=entry.held,
                total_quantity=totals[entry.code],
                reason=reason,
                user_id=user_id,
            ),
            entry.part_id,
        )


async def add_stock(
    uow: UnitOfWork,
    code: str,
    data: StockAdd,
    *,
    user_id: str | None,
    expected_version: int | None = None,
) -> StockedPart:
    async with uow.direct():
        await _lock_boxes(uow, [(data.box_no, data.loc_no)], pieces={data.box_no: data.quantity})
        part_id, code = await _live_part(uow, code, expected_version)
        held = await _put(uow, code, data.box_no, data.loc_no, data.quantity)
        part = await _bump_total(uow, part_id, data.quantity, expected_version)
        totals = {code: part.total_quantity}
        entry = StockEntry(code, part_id, K.ADD, data.quantity, data.box_no, data.loc_no, held)
        await record_changes(uow, [entry], totals, reason=data.reason, user_id=user_id)
        return await _finish(uow, part)


async def remove_stock(
    uow: UnitOfWork,
    code: str,
    data: StockRemove,
    *,
    user_id: str | None,
    expected_version: int | None = None,
) -> StockedPart:
    async with uow.direct():
        await _lock_boxes(uow, [(data.box_no, data.loc_no)], pieces={data.box_no: -data.quantity})
        part_id, code = await _live_part(uow, code, expected_version)
        left = await _take(uow, code, data.box_no, data.loc_no, data.quantity)
        part = await _bump_total(uow, part_id, -data.quantity, expected_version)
        totals = {code: part.total_quantity}
        entry = StockEntry(code, part_id, K.REMOVE, -data.quantity, data.box_no, data.loc_no, left)
        await record_changes(uow, [entry], totals, reason=data.reason, user_id=user_id)
        return await _finish(uow, part)


async def move_stock(
    uow: UnitOfWork,
    code: str,
    data: StockMove,
    *,
    user_id: str | None,
    expected_version: int | None = None,
) -> StockedPart:
    source, target = (data.from_box_no, data.from_loc_no), (data.to_box_no, data.to_loc_no)
    async with uow.direct():
        pieces = Counter({data.from_box_no: -data.quantity})
        pieces[data.to_box_no] += data.quantity
        fields = ["body.from_box_no", "body.to_box_no"]
        await _lock_boxes(uow, [source, target], fields, pieces=pieces)
        part_id, code = await _live_part(uow, code, expected_version)
        left = await _take(uow, code, *source, data.quantity)
        held = await _put(uow, code, *target, data.quantity)
        # The total stays; the part's version still counts the change.
        part = await _bump_total(uow, part_id, 0, expected_version)
        totals = {code: part.total_quantity}
        entries = [
            StockEntry(code, part_id, K.MOVE_OUT, -data.quantity, *source, left),
            StockEntry(code, part_id, K.MOVE_IN, data.quantity, *target, held),
        ]
        await record_changes(uow, entries, totals, reason=data.reason, user_id=user_id)
        return await _finish(uow, part)


async def _finish(uow: UnitOfWork, part: Part) -> StockedPart:
    found = await _stocked(uow, part)
    await uow.commit()
    return found


async def history(
    uow: UnitOfWork, code: str, params: PageParams, *, include_deleted: bool = False
) -> Slice[StockChange]:
    """A soft-deleted part's history is hidden with the part (§3), unless asked for."""
    query = ListQuery(params.skip, params.limit, None, "at", SortOrder.DESC, False)
    async with uow:
        await PART.load_attached(uow, code, include_deleted=include_deleted)
        stmt = select(StockChange).where(StockChange.part_id == code)
        return await paginate(
            uow.session,
            stmt,
            query,
            sort_columns={"at": StockChange.at},
            tie_breaker=StockChange.id,
        )


# --- projects -------------------------------------------------------------------------


def _requirements(values: dict[str, Any]) -> dict[str, Any]:
    if values.get("requirements") is not None:
        values["requirements"] = [
            requirement if isinstance(requirement, dict) else requirement.model_dump()
            for requirement in values["requirements"]
        ]
    return values


async def create_project(uow: UnitOfWork, data: ProjectCreate) -> Project:
    async with uow:
        project = await PROJECT.insert(uow, _requirements(data.model_dump()))
        await uow.commit()
        return project


async def get_project(
    uow: UnitOfWork, project_id: uuid.UUID, *, include_deleted: bool = False
) -> Project:
    async with uow.read_only():
        return await PROJECT.read_detached(uow, project_id, include_deleted=include_deleted)


async def list_projects(uow: UnitOfWork, query: ListQuery) -> Slice[Project]:
    stmt = PROJECT.select_visible(include_deleted=query.include_deleted)
    if query.search:
        stmt = stmt.where(Project.name.ilike(like_pattern(query.search), escape="\\"))
    async with uow:
        return await paginate(
            uow.session, stmt, query, sort_columns=PROJECT_SORT, tie_breaker=Project.id
        )


async def update_project(
    uow: UnitOfWork, project_id: uuid.UUID, data: ProjectUpdate, *, expected_version: int | None
) -> Project:
    return await _write_project(
        uow, project_id, _requirements(partial_changes(data)), expected_version
    )


async def replace_project(
    uow: UnitOfWork, project_id: uuid.UUID, data: ProjectCreate, *, expected_version: int | None
) -> Project:
    return await _write_project(uow, project_id, _requirements(replacement(data)), expected_version)


async def _write_project(
    uow: UnitOfWork, project_id: uuid.UUID, values: dict[str, Any], expected_version: int | None
) -> Project:
    async def apply(project: Project) -> None:
        for field, value in values.items():
            if getattr(project, field) != value:
                setattr(project, field, value)

    return await PROJECT.change(uow, project_id, expected_version=expected_version, apply=apply)


async def _available(uow: UnitOfWork, codes: Sequence[str]) -> dict[str, int]:
    """Each part's stock summed over every location (its live total)."""
    if not codes:
        return {}
    rows = await uow.session.execute(
        select(Part.code, Part.total_quantity).where(
            Part.code.in_(codes), Part.deleted_at.is_(None), Part.deletion_audit_id.is_(None)
        )
    )
    return dict(rows.tuples().all())


def _needs(project: Project) -> dict[str, int]:
    return {item["part_id"]: int(item["quantity"]) for item in project.requirements}


async def buildability(uow: UnitOfWork, project_id: uuid.UUID, builds: int) -> rules.Buildability:
    async with uow:
        project = await PROJECT.load_attached(uow, project_id)
        needs = _needs(project)
        return rules.buildability(needs, await _available(uow, list(needs)), builds)


def _insufficient(result: rules.Buildability) -> Conflict:
    short = [need for need in result.parts if need.shortfall]
    names = ", ".join(f"{need.part_id} (short {need.shortfall})" for need in short)
    return Conflict(
        f"Not enough stock for {result.builds} builds: {names}.",
        code="INSUFFICIENT_STOCK",
        extra={
            "shortfalls": [
                {
                    "part_id": need.part_id,
                    "required": need.required,
                    "available": need.available,
                    "shortfall": need.shortfall,
                }
                for need in short
            ]
        },
    )


async def build(
    uow: UnitOfWork, project_id: uuid.UUID, builds: int, *, user_id: str | None
) -> rules.Buildability:
    """Consume the stock of ``builds`` builds, all or nothing, smallest locations first;
    answers what the stock allows afterwards."""
    async with uow:
        project = await PROJECT.load_attached(uow, project_id)
        needs = _needs(project)
        if not needs:
            raise Conflict(
                f"Project {project.name} requires no parts; there is nothing to build.",
                code="PROJECT_HAS_NO_REQUIREMENTS",
            )
        codes = sorted(needs)
        places = await uow.session.execute(
            select(Location.box_no, Location.loc_no).where(Location.part_id.in_(codes))
        )
        await _lock_boxes(uow, list(places.tuples().all()))
        # Under the box locks, no location of these boxes changes until we commit.
        rows = await uow.session.execute(
            select(Part.id, Part.code)
            .where(Part.code.in_(codes))
            .order_by(Part.code)
            .with_for_update()
        )
        ids = dict((code, part_id) for part_id, code in rows.tuples().all())
        held = await _locations_of(uow, codes)
        available = {code: sum(q for _, _, q in held[code]) for code in codes if code in ids}
        result = rules.buildability(needs, available, builds)
        if not result.can_build:
            raise _insufficient(result)
        entries: list[StockEntry] = []
        totals: dict[str, int] = {}
        reason = f"build {project.name} ×{builds}"  # noqa: RUF001 (§11 spells it so)
        for code in codes:
            for box_no, loc_no, amount in rules.take_smallest_first(
                held[code], needs[code] * builds
            ):
                left = await _take(uow, code, box_no, loc_no, amount)
                entries.append(StockEntry(code, ids[code], K.BUILD, -amount, box_no, loc_no, left))
            part = await _bump_total(uow, ids[code], -needs[code] * builds)
            totals[code] = part.total_quantity
        taken: Counter[int] = Counter()
        for entry in entries:
            taken[entry.box_no] += entry.delta
        for box_no, change in sorted(taken.items()):
            await change_box(uow, box_no, change, 0)
        await record_changes(uow, entries, totals, reason=reason, user_id=user_id)
        uow.emit(
            ProjectBuilt(
                project_id=project.id,
                name=project.name,
                builds=builds,
                consumed=[BuiltPart(part_id=c, quantity=needs[c] * builds) for c in codes],
                user_id=user_id,
            ),
            project.id,
        )
        after = rules.buildability(needs, {code: totals.get(code, 0) for code in codes}, builds)
        await uow.commit()
        return after


# --- placement ------------------------------------------------------------------------


async def placement(uow: UnitOfWork, code: str, limit: int) -> list[rules.Suggestion]:
    async with uow:
        part = await PART.load_attached(uow, code)
        boxes = (await uow.session.execute(select(Box.box_no, Box.capacity, Box.used))).all()
        rows = await uow.session.execute(
            select(Location.box_no, Location.loc_no, Location.part_id, Part.category).join(
                Part, Part.code == Location.part_id
            )
        )
        occupied: dict[int, dict[int, tuple[str, str | None]]] = {}
        for box_no, loc_no, part_id, category in rows.all():
            occupied.setdefault(box_no, {})[loc_no] = (part_id, category)
        layouts = [
            rules.BoxLayout(box_no, capacity, occupied.get(box_no, {}))
            for box_no, capacity, used in boxes
            if used < capacity
        ]
        return rules.suggest_placement(part.code, part.category, layouts, limit)
