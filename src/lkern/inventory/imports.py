"""Importing parts (and their stock) from CSV (§11): every row checked before any is written."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import insert, select

from lkern.events.inventory import PartCreated
from lkern.inventory import service
from lkern.inventory.enums import StockChangeKind
from lkern.inventory.models import Box, Location, Part, search_text_of
from lkern.inventory.schemas import ImportResult, ImportRowError, PartCreate, StockAdd
from lkern.platform.errors import Unprocessable
from lkern.platform.uow import UnitOfWork

logger = logging.getLogger(__name__)

PART_COLUMNS = frozenset(PartCreate.model_fields)
STOCK_COLUMNS = frozenset({"box_no", "loc_no", "quantity"})
MAX_ROWS = 100_000
#: Rows written per statement: large imports go in a few round trips.
CHUNK = 1000


@dataclass
class ParsedRow:
    number: int
    part: PartCreate
    stock: StockAdd | None


@dataclass
class Parsed:
    rows: list[ParsedRow] = field(default_factory=list)
    errors: list[ImportRowError] = field(default_factory=list)


def _split(text: str) -> list[str]:
    return [piece.strip() for piece in text.split(";") if piece.strip()]


def _attributes(text: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for piece in _split(text):
        key, sep, value = piece.partition("=")
        if not sep:
            raise ValueError(f"attribute {piece!r} is not key=value")
        pairs[key.strip()] = value.strip()
    return pairs


def parse_csv(text: str) -> Parsed:
    """Check every row: part fields through ``PartCreate``, stock columns through
    ``StockAdd``. Pure; the location and box checks need the database (``check_places``).

    ``tags`` are separated by ``;``, ``attributes`` are ``key=value;key=value``.
    """
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    if not header:
        raise Unprocessable("The CSV has no header row.", code="CSV_EMPTY")
    unknown = sorted(set(header) - PART_COLUMNS - STOCK_COLUMNS)
    if unknown:
        raise Unprocessable(
            f"Unknown columns: {', '.join(unknown)}; known are "
            f"{', '.join(sorted(PART_COLUMNS | STOCK_COLUMNS))}.",
            code="CSV_UNKNOWN_COLUMNS",
        )
    if "description" not in header:
        raise Unprocessable("The CSV needs a description column.", code="CSV_MISSING_COLUMNS")
    reader.fieldnames = header
    parsed = Parsed()
    for count, raw in enumerate(reader, start=1):
        # The file's line the row ends on: blank lines skipped still count.
        number = reader.line_num
        if count > MAX_ROWS:
            raise Unprocessable(f"At most {MAX_ROWS:,} rows at once.", code="CSV_TOO_LARGE")
        if None in raw:
            parsed.errors.append(ImportRowError(row=number, field=None, message="too many fields"))
            continue
        values = {key: (value or "").strip() for key, value in raw.items()}
        try:
            part_values: dict[str, Any] = {
                key: value for key, value in values.items() if key in PART_COLUMNS and value
            }
            if "tags" in part_values:
                part_values["tags"] = _split(part_values["tags"])
            if "attributes" in part_values:
                part_values["attributes"] = _attributes(part_values["attributes"])
        except ValueError as error:
            parsed.errors.append(ImportRowError(row=number, field="attributes", message=str(error)))
            continue
        stock_values = {key: values[key] for key in STOCK_COLUMNS if values.get(key)}
        try:
            part = PartCreate.model_validate(part_values)
            stock = None
            if stock_values:
                stock = StockAdd.model_validate(stock_values)
        except ValidationError as error:
            for problem in error.errors():
                where = ".".join(str(piece) for piece in problem["loc"]) or None
                parsed.errors.append(
                    ImportRowError(row=number, field=where, message=problem["msg"])
                )
            continue
        parsed.rows.append(ParsedRow(number, part, stock))
    return parsed


async def _check_places(uow: UnitOfWork, parsed: Parsed) -> None:
    """Boxes that exist, locations inside them, each free and named by one row only."""
    stocked = [row for row in parsed.rows if row.stock is not None]
    if not stocked:
        return
    # Locked, so no stock lands in these boxes between the check and the write.
    boxes = select(Box.box_no, Box.capacity).order_by(Box.box_no).with_for_update()
    capacity = dict((await uow.session.execute(boxes)).tuples().all())
    taken = {
        (box_no, loc_no)
        for box_no, loc_no in (
            await uow.session.execute(select(Location.box_no, Location.loc_no))
        ).tuples()
    }
    named: dict[tuple[int, int], int] = {}
    for row in stocked:
        assert row.stock is not None
        place = (row.stock.box_no, row.stock.loc_no)
        if place[0] not in capacity:
            message = f"box {place[0]} does not exist"
        elif place[1] > capacity[place[0]]:
            message = f"box {place[0]} has locations 1 to {capacity[place[0]]}"
        elif place in taken:
            message = f"location {place[0]}/{place[1]} holds another part"
        elif place in named:
            message = f"location {place[0]}/{place[1]} is also given in row {named[place]}"
        else:
            named[place] = row.number
            continue
        parsed.errors.append(ImportRowError(row=row.number, field="loc_no", message=message))


async def import_csv(
    unit_of_work: Callable[[], UnitOfWork],
    text: str,
    *,
    dry_run: bool,
    user_id: str | None,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Check all rows; unless it is a dry run and when none is bad, create every part and
    its stock in one transaction. ``progress`` is told how many rows are written."""
    parsed = parse_csv(text)
    uow = unit_of_work()
    async with uow:
        await _check_places(uow, parsed)
        rows = len(parsed.rows) + len({e.row for e in parsed.errors})
        if parsed.errors or dry_run:
            parsed.errors.sort(key=lambda error: error.row)
            return ImportResult(dry_run=dry_run, rows=rows, created=[], errors=parsed.errors)
        codes = await service._free_ids(uow, len(parsed.rows))
        created: list[str] = []
        for start in range(0, len(parsed.rows), CHUNK):
            chunk = list(
                zip(codes[start : start + CHUNK], parsed.rows[start : start + CHUNK], strict=True)
            )
            await _write_chunk(uow, chunk, user_id)
            created += [code for code, _ in chunk]
            if progress is not None:
                progress(len(chunk))
        await service.tally_parts(uow, len(created))
        await uow.commit()
    logger.info("imported %d parts", len(created))
    stocked = sum(1 for row in parsed.rows if row.stock is not None)
    return ImportResult(dry_run=False, rows=rows, created=created, stocked=stocked, errors=[])


async def _write_chunk(
    uow: UnitOfWork, chunk: list[tuple[str, ParsedRow]], user_id: str | None
) -> None:
    part_rows: list[dict[str, Any]] = []
    for code, row in chunk:
        values = service._columns(row.part.model_dump())
        values.update(
            code=code,
            documents=[],
            total_quantity=row.stock.quantity if row.stock else 0,
        )
        values["search_text"] = search_text_of(values)
        part_rows.append(values)
    result = await uow.session.execute(insert(Part).returning(*Part.__table__.c), part_rows)
    parts = {part["code"]: part for part in result.mappings().all()}
    stocked = [(code, row.stock) for code, row in chunk if row.stock is not None]
    for code, _ in chunk:
        part = parts[code]
        uow.emit(PartCreated(**service.snapshot(_row(part))), part["id"])  # type: ignore[arg-type]
    if not stocked:
        return
    await uow.session.execute(
        insert(Location),
        [
            {"box_no": s.box_no, "loc_no": s.loc_no, "part_id": code, "quantity": s.quantity}
            for code, s in stocked
        ],
    )
    used: dict[int, tuple[int, int]] = {}
    for _, s in stocked:
        locations, pieces = used.get(s.box_no, (0, 0))
        used[s.box_no] = (locations + 1, pieces + s.quantity)
    for box_no, (locations, pieces) in sorted(used.items()):
        await service.change_box(uow, box_no, pieces, locations)
    entries = [
        service.StockEntry(
            code,
            parts[code]["id"],
            StockChangeKind.IMPORT,
            s.quantity,
            s.box_no,
            s.loc_no,
            s.quantity,
        )
        for code, s in stocked
    ]
    totals = {code: s.quantity for code, s in stocked}
    await service.record_changes(uow, entries, totals, reason="import", user_id=user_id)


class _row:
    """A mapping row seen as attributes, for ``snapshot``."""

    def __init__(self, mapping: Any) -> None:
        self.__dict__.update(mapping)
