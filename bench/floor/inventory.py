"""The floor of W8: inventory's part search and stock changes as plain Starlette over
asyncpg, with the same SQL in the same transactions.

The search counts the matches up to 10,000, fetches the page one row long and then
the locations of the page's parts, in one transaction, as L-KERN's list does. A
stock change locks the location's box by the UPDATE that keeps its pieces,
reads the live part, changes the location by a conditional statement (an upsert
that only adds to the same part, or an UPDATE only where enough is held),
changes the part's total and version (the part coming back from that UPDATE),
writes the history row and the outbox row with its NOTIFY, reads the part's
locations, and commits: L-KERN's statements for an addition or a removal. No
token check, validation, ORM, metrics or logging; a refused change is rolled
back and answers 409 with no detail.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uuid_utils.compat import uuid7

from bench.floor.app import INSERT_OUTBOX, TOTAL_CAP, bounded_search

COLUMNS = (
    "code, description, manufacturer, manufacturer_code, category, tags, package, "
    "attributes, seller, seller_link, documents, total_quantity, search_text, id, "
    "created_at, updated_at, deleted_at, deletion_audit_id, version"
)
LIVE = "deletion_audit_id IS NULL AND deleted_at IS NULL"
MATCHING = f"{LIVE} AND search_text LIKE $1 ESCAPE '\\'"
COUNT_SQL = (
    f"SELECT count(*) FROM (SELECT {COLUMNS} FROM parts WHERE {MATCHING} "
    f"LIMIT {TOTAL_CAP + 1}) AS matching"
)
#: Sorted by id (the part's code), the list's default.
PAGE_SQL = f"SELECT {COLUMNS} FROM parts WHERE {MATCHING} ORDER BY code LIMIT $2 OFFSET $3"
LOCATIONS_SQL = (
    "SELECT part_id, box_no, loc_no, quantity FROM locations WHERE part_id = ANY($1) "
    "ORDER BY box_no, loc_no"
)
#: The box locked by the UPDATE that keeps its pieces, as L-KERN's add and remove do.
LOCK_BOX_SQL = (
    "UPDATE boxes SET quantity = quantity + $2, updated_at = $3 WHERE box_no = $1 "
    "RETURNING box_no, capacity"
)
LIVE_PART_SQL = f"SELECT id, code, version FROM parts WHERE code = $1 AND {LIVE}"
PUT_SQL = (
    "INSERT INTO locations (box_no, loc_no, part_id, quantity) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (box_no, loc_no) DO UPDATE SET quantity = locations.quantity + "
    "excluded.quantity WHERE locations.part_id = excluded.part_id RETURNING quantity"
)
TAKE_SQL = (
    "UPDATE locations SET quantity = quantity - $4 WHERE box_no = $1 AND loc_no = $2 "
    "AND part_id = $3 AND quantity > $4 RETURNING quantity"
)
USED_SQL = "UPDATE boxes SET used = used + $2, updated_at = $3 WHERE box_no = $1"
#: The part as the update of its total leaves it: the answer, with no read after it.
TOTAL_SQL = (
    "UPDATE parts SET total_quantity = total_quantity + $2, version = version + 1, "
    f"updated_at = $3 WHERE id = $1 RETURNING {COLUMNS}"
)
HISTORY_SQL = (
    "INSERT INTO stock_history (id, part_id, kind, delta, box_no, loc_no, reason, user_id, at) "
    "VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7)"
)

pool: asyncpg.Pool | None = None


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    global pool
    size = 2 * int(os.environ.get("LKERN_DB_POOL_SIZE", "10"))
    pool = await asyncpg.create_pool(os.environ["FLOOR_DATABASE_URL"], min_size=0, max_size=size)
    yield
    await pool.close()


def _json(row: asyncpg.Record) -> dict[str, Any]:
    item = {
        key: value
        for key, value in row.items()
        if key not in {"search_text", "deletion_audit_id", "code"}
    }
    item["id"] = row["code"]
    for key in ("tags", "attributes", "documents"):
        item[key] = json.loads(item[key])
    for key in ("created_at", "updated_at", "deleted_at"):
        if item[key] is not None:
            item[key] = item[key].astimezone(UTC).isoformat()
    item["is_deleted"] = item["deleted_at"] is not None
    return item


async def _with_locations(connection: asyncpg.Connection, items: list[dict[str, Any]]) -> None:
    held: dict[str, list[dict[str, int]]] = {item["id"]: [] for item in items}
    for row in await connection.fetch(LOCATIONS_SQL, list(held)):
        held[row["part_id"]].append(
            {"box_no": row["box_no"], "loc_no": row["loc_no"], "quantity": row["quantity"]}
        )
    for item in items:
        item["locations"] = held[item["id"]]


async def health(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def list_parts(request: Request) -> Response:
    assert pool is not None
    return await bounded_search(
        pool, request, COUNT_SQL, PAGE_SQL, _json, lower=True, complete=_with_locations
    )


async def _change(connection: asyncpg.Connection, code: str, kind: str, data: Any) -> Any:
    """One stock change in the caller's transaction: the part's row as it leaves it, or
    None when the change is refused."""
    box_no, loc_no, quantity = int(data["box_no"]), int(data["loc_no"]), int(data["quantity"])
    delta = quantity if kind == "add" else -quantity
    now = datetime.now(UTC)
    box = await connection.fetchrow(LOCK_BOX_SQL, box_no, delta, now)
    if box is None or loc_no > box["capacity"]:
        return None
    part = await connection.fetchrow(LIVE_PART_SQL, code)
    if part is None:
        return None
    if kind == "add":
        held = await connection.fetchval(PUT_SQL, box_no, loc_no, code, quantity)
        if held is None:
            return None
        if held == quantity:  # it was free
            await connection.execute(USED_SQL, box_no, 1, now)
    else:
        # Only the path the workload takes (a location holding more than is removed).
        held = await connection.fetchval(TAKE_SQL, box_no, loc_no, code, quantity)
        if held is None:
            return None
    row = await connection.fetchrow(TOTAL_SQL, part["id"], delta, now)
    await connection.execute(HISTORY_SQL, uuid7(), code, kind, delta, box_no, loc_no, now)
    event_id = uuid7()
    envelope = {
        "specversion": "1.0",
        "id": str(event_id),
        "source": "/lkern/inventory",
        "type": "lkern.inventory.stock_changed",
        "subject": str(part["id"]),
        "time": now.isoformat(),
        "datacontenttype": "application/json",
        "data": {
            "part_id": code,
            "box_no": box_no,
            "loc_no": loc_no,
            "delta": delta,
            "kind": kind,
            "quantity": held,
            "total_quantity": row["total_quantity"],
            "reason": None,
            "user_id": None,
        },
    }
    await connection.fetchval(
        INSERT_OUTBOX,
        event_id,
        "lkern.inventory.stock_changed",
        str(part["id"]),
        json.dumps(envelope),
        now,
    )
    return row


class _Refused(Exception):
    """A stock change that changes nothing: its transaction is rolled back."""


async def change_stock(request: Request) -> Response:
    assert pool is not None
    code, kind = request.path_params["code"], request.path_params["kind"]
    data = await request.json()
    try:
        return await _answer(code, kind, data)
    except _Refused:
        return JSONResponse({"title": "Conflict"}, status_code=409)


async def _answer(code: str, kind: str, data: Any) -> Response:
    assert pool is not None
    async with pool.acquire() as connection, connection.transaction():
        row = await _change(connection, code, kind, data)
        if row is None:
            raise _Refused  # out of the transaction: the box's pieces are undone
        item = _json(row)
        await _with_locations(connection, [item])
    return JSONResponse(item, headers={"ETag": f'"{item["version"]}"'})


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/api/v1/parts", list_parts, methods=["GET"]),
        Route("/api/v1/parts/{code}/stock/{kind:str}", change_stock, methods=["POST"]),
    ],
    lifespan=lifespan,
)
