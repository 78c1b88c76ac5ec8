"""The floor of W6 and W7: issues' list with search and their attachments, as plain
Starlette over asyncpg and aiobotocore, with the same SQL and the same I/O.

W6 counts the matches up to 10,000 and fetches the page one row long, as L-KERN's
list does. W7's upload parses the multipart body as it arrives, locks the issue's
row, PUTs the file to S3 (one object, held in memory as L-KERN's adapter holds a
file under its part size), appends it to the row's attachments with the outbox
row and its NOTIFY, and commits; its download reads the row and redirects to a
presigned link. No token check, validation, sniffing, ORM, metrics or logging.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from uuid_utils.compat import uuid7

from bench.floor.app import INSERT_OUTBOX, TOTAL_CAP, bounded_search

COLUMNS = (
    "id, code, title, description, type, status, priority, reporter_id, assignee_id, "
    "contact_id, attachments, resolved_at, closed_at, created_at, updated_at, deleted_at, "
    "deletion_audit_id, version"
)
VISIBLE = "deletion_audit_id IS NULL AND deleted_at IS NULL"
MATCHING = (
    f"{VISIBLE} AND (code ILIKE $1 ESCAPE '\\' OR title ILIKE $1 ESCAPE '\\' "
    "OR description ILIKE $1 ESCAPE '\\')"
)
#: W6: the newest matching issues first, as an issue list is read.
COUNT_SQL = (
    f"SELECT count(*) FROM (SELECT {COLUMNS} FROM issues WHERE {MATCHING} "
    f"LIMIT {TOTAL_CAP + 1}) AS matching"
)
PAGE_SQL = (
    f"SELECT {COLUMNS} FROM issues WHERE {MATCHING} "
    "ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
)
GET_SQL = f"SELECT {COLUMNS} FROM issues WHERE {VISIBLE} AND id = $1"
LOCK_SQL = f"{GET_SQL} FOR UPDATE"
ATTACH_SQL = (
    "UPDATE issues SET attachments = $2, version = version + 1, updated_at = $3 "
    "WHERE id = $1 AND version = $4"
)
PRESIGN_TTL_SECONDS = 900

pool: asyncpg.Pool | None = None
s3: Any = None
BUCKET = os.environ.get("FLOOR_S3_BUCKET", "")


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    global pool, s3
    size = 2 * int(os.environ.get("LKERN_DB_POOL_SIZE", "10"))
    pool = await asyncpg.create_pool(os.environ["FLOOR_DATABASE_URL"], min_size=0, max_size=size)
    async with AsyncExitStack() as stack:
        s3 = await stack.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=os.environ["FLOOR_S3_ENDPOINT"],
                region_name="us-east-1",
                config=AioConfig(s3={"addressing_style": "path"}),
            )
        )
        yield
    await pool.close()


def _stamp(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _json(row: asyncpg.Record) -> dict[str, Any]:
    item = {key: value for key, value in row.items() if key != "deletion_audit_id"}
    for key in ("id", "reporter_id", "assignee_id", "contact_id"):
        item[key] = str(item[key]) if item[key] is not None else None
    for key in ("resolved_at", "closed_at", "created_at", "updated_at", "deleted_at"):
        item[key] = _stamp(item[key])
    item["attachments"] = [
        {name: value for name, value in file.items() if name != "object_key"}
        for file in json.loads(item["attachments"])
    ]
    item["is_deleted"] = item["deleted_at"] is not None
    return item


async def health(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def list_issues(request: Request) -> Response:
    assert pool is not None
    return await bounded_search(pool, request, COUNT_SQL, PAGE_SQL, _json)


async def _file_part(request: Request) -> tuple[str, bytes]:
    """The ``file`` part's name and bytes, parsed as the body arrives."""
    _, options = parse_options_header(request.headers["content-type"])
    data = bytearray()
    headers: list[bytes] = []
    parser = MultipartParser(
        options[b"boundary"],
        {
            "on_header_value": lambda chunk, start, end: headers.append(bytes(chunk[start:end])),
            "on_part_data": lambda chunk, start, end: data.extend(chunk[start:end]),
        },
    )
    async for chunk in request.stream():
        parser.write(chunk)
    parser.finalize()
    _, disposition = parse_options_header(headers[0])
    return disposition.get(b"filename", b"file").decode(), bytes(data)


async def upload(request: Request) -> Response:
    assert pool is not None
    issue_id = request.path_params["issue_id"]
    filename, body = await _file_part(request)
    file_id, now = uuid7(), datetime.now(UTC)
    key = f"issues/{issue_id}/{file_id}.png"
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(LOCK_SQL, issue_id)
        if row is None:
            return JSONResponse({"title": "Not Found"}, status_code=404)
        await s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType="image/png")
        file = {
            "file_id": str(file_id),
            "filename": filename,
            "content_type": "image/png",
            "size": len(body),
            "object_key": key,
            "uploaded_at": now.isoformat(),
        }
        files = [*json.loads(row["attachments"]), file]
        await connection.execute(ATTACH_SQL, issue_id, json.dumps(files), now, row["version"])
        event_id = uuid7()
        envelope = {
            "specversion": "1.0",
            "id": str(event_id),
            "source": "/lkern/issues",
            "type": "lkern.issues.attachment_added",
            "subject": str(issue_id),
            "time": now.isoformat(),
            "datacontenttype": "application/json",
            "data": {"id": str(issue_id), "version": row["version"] + 1, "attachment": file},
        }
        await connection.fetchval(
            INSERT_OUTBOX,
            event_id,
            "lkern.issues.attachment_added",
            str(issue_id),
            json.dumps(envelope),
            now,
        )
    shown = {name: value for name, value in file.items() if name != "object_key"}
    return JSONResponse(shown, status_code=201)


async def download(request: Request) -> Response:
    assert pool is not None
    issue_id, file_id = request.path_params["issue_id"], str(request.path_params["file_id"])
    row = await pool.fetchrow(GET_SQL, issue_id)
    files = json.loads(row["attachments"]) if row is not None else []
    found = [file for file in files if file["file_id"] == file_id]
    if not found:
        return JSONResponse({"title": "Not Found"}, status_code=404)
    file = found[0]
    url = await s3.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": BUCKET,
            "Key": file["object_key"],
            "ResponseContentType": file["content_type"],
            "ResponseContentDisposition": f'attachment; filename="{file["filename"]}"',
        },
        ExpiresIn=PRESIGN_TTL_SECONDS,
    )
    return RedirectResponse(url, status_code=307)


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/api/v1/issues", list_issues, methods=["GET"]),
        Route("/api/v1/issues/{issue_id:uuid}/attachments", upload, methods=["POST"]),
        Route(
            "/api/v1/issues/{issue_id:uuid}/attachments/{file_id:uuid}", download, methods=["GET"]
        ),
    ],
    lifespan=lifespan,
)
