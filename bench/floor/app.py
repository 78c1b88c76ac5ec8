"""The floor: contacts' W1-W3 as plain Starlette over asyncpg, running the same SQL.

No validation models, ORM, auth, metrics, tracing or logging: only what any
server answering these requests must do. L-KERN's figures are printed as
ratios to this one, so it measures what L-KERN's layers cost, not the machine.
Writes go into contacts' own tables, outbox row and NOTIFY included, so the
database does the same work for both.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uuid_utils.compat import uuid7

FIELDS = ("name", "email", "phone", "company", "notes", "is_active")
COLUMNS = (
    "id, name, email, phone, company, notes, is_active, version, created_at, updated_at, "
    "deleted_at, deletion_audit_id"
)
VISIBLE = "deletion_audit_id IS NULL AND deleted_at IS NULL"
SEARCH = (
    "(name ILIKE $1 ESCAPE '\\' OR email ILIKE $1 ESCAPE '\\' "
    "OR phone ILIKE $1 ESCAPE '\\' OR company ILIKE $1 ESCAPE '\\')"
)
MATCHING = f"{VISIBLE} AND is_active IS true AND {SEARCH}"
#: W1, W3's count and W3's page: what L-KERN's ORM sends, less its casts and aliases.
GET_SQL = f"SELECT {COLUMNS} FROM contacts WHERE {VISIBLE} AND id = $1"
#: The count stops past 10,000 matches and the page is fetched one row long, as §2's
#: bounded total and exact has_more have L-KERN do.
TOTAL_CAP = 10_000
COUNT_SQL = (
    f"SELECT count(*) FROM (SELECT {COLUMNS} FROM contacts WHERE {MATCHING} "
    f"LIMIT {TOTAL_CAP + 1}) AS matching"
)
PAGE_SQL = f"SELECT {COLUMNS} FROM contacts WHERE {MATCHING} ORDER BY name, id LIMIT $2 OFFSET $3"
INSERT = (
    "INSERT INTO contacts (id, name, email, phone, company, notes, is_active, version, "
    "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)"
)
#: The outbox row and the relays' wake-up in one statement, as the platform writes them.
INSERT_OUTBOX = (
    "WITH written AS (INSERT INTO outbox (event_id, topic, key, payload, created_at, attempts) "
    "VALUES ($1, $2, $3, $4, $5, 0) RETURNING seq) "
    "SELECT pg_notify('lkern_outbox', '') FROM written LIMIT 1"
)

pool: asyncpg.Pool | None = None


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    global pool
    # As many connections as a service's pool may hold (kept + as many overflow),
    # opened as used (each workload's unmeasured first run opens them), so an
    # idle floor holds none on a server it shares.
    size = 2 * int(os.environ.get("LKERN_DB_POOL_SIZE", "10"))
    pool = await asyncpg.create_pool(os.environ["FLOOR_DATABASE_URL"], min_size=0, max_size=size)
    yield
    await pool.close()


def _json(row: asyncpg.Record) -> dict[str, Any]:
    item = {key: value for key, value in row.items() if key != "deletion_audit_id"}
    item["id"] = str(item["id"])
    for key in ("created_at", "updated_at", "deleted_at"):
        if item[key] is not None:
            item[key] = item[key].replace(tzinfo=UTC).isoformat()
    item["is_deleted"] = item["deleted_at"] is not None
    return item


async def health(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def get_contact(request: Request) -> Response:
    assert pool is not None
    contact_id = request.path_params["contact_id"]
    row = await pool.fetchrow(GET_SQL, contact_id)
    if row is None:
        return JSONResponse({"title": "Not Found"}, status_code=404)
    return JSONResponse(_json(row))


async def list_contacts(request: Request) -> Response:
    assert pool is not None
    return await bounded_search(pool, request, COUNT_SQL, PAGE_SQL, _json)


async def bounded_search(
    db: asyncpg.Pool,
    request: Request,
    count_sql: str,
    page_sql: str,
    shown: Callable[[asyncpg.Record], dict[str, Any]],
    *,
    lower: bool = False,
    complete: Callable[[asyncpg.Connection, list[dict[str, Any]]], Awaitable[None]] | None = None,
) -> Response:
    """A list with search as §2 has it: the count up to 10,000 and the page one row
    long, in one transaction; ``shown`` turns a row into its JSON. With ``lower`` the
    term is lower-cased (a search over lower-cased text); ``complete`` adds to the page's
    items in the same transaction what other tables hold of them."""
    params = request.query_params
    limit, skip = int(params.get("limit", 100)), int(params.get("skip", 0))
    term = params["search"].lower() if lower else params["search"]
    text = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    async with db.acquire() as connection, connection.transaction():
        counted = await connection.fetchval(count_sql, f"%{text}%")
        rows = await connection.fetch(page_sql, f"%{text}%", limit + 1, skip)
        items = [shown(row) for row in rows[:limit]]
        if complete is not None:
            await complete(connection, items)
    return JSONResponse(
        {
            "items": items,
            "total": min(counted, TOTAL_CAP),
            "total_exact": counted <= TOTAL_CAP,
            "skip": skip,
            "limit": limit,
            "has_more": len(rows) > limit,
        }
    )


async def create_contact(request: Request) -> Response:
    assert pool is not None
    data = await request.json()
    contact_id, now = uuid7(), datetime.now(UTC).replace(tzinfo=None)
    values = (
        data["name"],
        data["email"].lower(),
        data.get("phone"),
        data.get("company"),
        data.get("notes"),
        data.get("is_active", True),
    )
    try:
        return await _insert(contact_id, values, now)
    except asyncpg.UniqueViolationError as exc:
        return JSONResponse({"title": "Conflict", "index": exc.constraint_name}, status_code=409)


async def _insert(contact_id: Any, values: tuple[Any, ...], now: datetime) -> Response:
    assert pool is not None
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(INSERT, contact_id, *values, now)
        stamp = now.replace(tzinfo=UTC).isoformat()
        contact = {
            "id": str(contact_id),
            **dict(zip(FIELDS, values, strict=True)),
            "version": 1,
            "created_at": stamp,
            "updated_at": stamp,
            "deleted_at": None,
            "is_deleted": False,
        }
        event_id = uuid7()
        envelope = {
            "specversion": "1.0",
            "id": str(event_id),
            "source": "/lkern/contacts",
            "type": "lkern.contacts.created",
            "subject": str(contact_id),
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "dataschema": "urn:lkern:events:lkern.contacts.created:v1",
            "data": {
                key: contact[key]
                for key in (
                    "id",
                    "name",
                    "email",
                    "phone",
                    "company",
                    "is_active",
                    "version",
                    "updated_at",
                    "deleted_at",
                )
            },
        }
        await connection.fetchval(
            INSERT_OUTBOX,
            event_id,
            "lkern.contacts.created",
            str(contact_id),
            json.dumps(envelope),
            now,
        )
    return JSONResponse(
        contact, status_code=201, headers={"Location": f"/api/v1/contacts/{contact_id}"}
    )


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/api/v1/contacts", list_contacts, methods=["GET"]),
        Route("/api/v1/contacts", create_contact, methods=["POST"]),
        Route("/api/v1/contacts/{contact_id:uuid}", get_contact, methods=["GET"]),
    ],
    lifespan=lifespan,
)
