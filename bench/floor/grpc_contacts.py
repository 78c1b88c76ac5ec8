"""W5's floor: ``ContactsService.GetContact`` as a bare grpc.aio server over asyncpg.

The same SQL as contacts' GetContact sends (the floor's GET_SQL) and the same
message built from the row, on uvloop as ``lkern serve`` runs; none of the
platform's layers (no credential check, no interceptor, trace, log line or
ORM types). Run as ``python -m bench.floor.grpc_contacts PORT`` with
``FLOOR_DATABASE_URL`` and ``LKERN_DB_POOL_SIZE`` set.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid

import asyncpg
import grpc
import uvloop
from google.protobuf.timestamp_pb2 import Timestamp

from bench.floor.app import GET_SQL
from lkern.proto.contacts.v1 import contacts_pb2 as pb
from lkern.proto.contacts.v1 import contacts_pb2_grpc as pb_grpc


def _timestamp(row: asyncpg.Record, column: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(row[column])
    return stamp


class FloorContacts(pb_grpc.ContactsServiceServicer):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def GetContact(
        self, request: pb.GetContactRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetContactResponse:
        try:
            contact_id = uuid.UUID(request.id)
        except ValueError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a contact id")
        row = await self.pool.fetchrow(GET_SQL, contact_id)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "contact not found")
        return pb.GetContactResponse(
            contact=pb.Contact(
                id=str(row["id"]),
                name=row["name"],
                email=row["email"],
                phone=row["phone"],
                company=row["company"],
                is_active=row["is_active"],
                version=row["version"],
                created_at=_timestamp(row, "created_at"),
                updated_at=_timestamp(row, "updated_at"),
            )
        )


async def serve(port: int) -> None:
    # As many connections as the HTTP floor (bench/floor/app.py), opened as used.
    size = 2 * int(os.environ.get("LKERN_DB_POOL_SIZE", "10"))
    pool = await asyncpg.create_pool(os.environ["FLOOR_DATABASE_URL"], min_size=0, max_size=size)
    server = grpc.aio.server()
    pb_grpc.add_ContactsServiceServicer_to_server(FloorContacts(pool), server)
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"cannot listen on port {port}")
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await server.stop(2)
    await pool.close()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
