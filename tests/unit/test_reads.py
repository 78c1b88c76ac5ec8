"""How the read lane, and the unit of work, tell an unavailable database from a bad statement."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from lkern.contacts.models import Contact
from lkern.platform.errors import DatabaseUnavailable
from lkern.platform.reads import Reader
from lkern.platform.settings import Settings
from lkern.platform.uow import is_connectivity_error, is_unavailable_sqlstate

BY_ID = select(Contact.id, Contact.name).where(Contact.id == bindparam("item_id"))


class FlakyPool:
    """Hands out connections whose first ``failures`` fetches find the server gone."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.fetches = 0

    @asynccontextmanager
    async def acquire(self, timeout: float | None = None) -> Any:
        yield self

    async def fetch(self, sql: str, *arguments: Any) -> list[dict[str, Any]]:
        self.fetches += 1
        if self.fetches <= self.failures:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")
        return [{"id": arguments[0], "name": "Ada"}]


def reader_with(pool: FlakyPool) -> Reader:
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    reader = Reader(engine, Settings(), "contacts")
    reader._pool = pool
    return reader


async def test_a_read_that_lost_its_connection_runs_once_more():
    pool = FlakyPool(failures=1)
    item_id = uuid.uuid4()
    row = await reader_with(pool).one_or_none(BY_ID, {"item_id": item_id})
    assert row == {"id": item_id, "name": "Ada"}
    assert pool.fetches == 2


async def test_a_read_that_keeps_losing_it_is_an_outage():
    pool = FlakyPool(failures=2)
    with pytest.raises(DatabaseUnavailable):
        await reader_with(pool).one_or_none(BY_ID, {"item_id": uuid.uuid4()})
    assert pool.fetches == 2


class RefusingPool(FlakyPool):
    """A server out of connection slots refuses every new client."""

    @asynccontextmanager
    async def acquire(self, timeout: float | None = None) -> Any:
        raise asyncpg.TooManyConnectionsError("sorry, too many clients already")
        yield self


async def test_a_server_out_of_connections_is_an_outage_not_an_error():
    with pytest.raises(DatabaseUnavailable):
        await reader_with(RefusingPool(0)).one_or_none(BY_ID, {"item_id": uuid.uuid4()})


@pytest.mark.parametrize(
    ("sqlstate", "unavailable"),
    [
        ("53300", True),  # too many connections
        ("08006", True),  # connection failure
        ("57P01", True),  # admin shutdown
        ("57P03", True),  # cannot connect now
        ("57014", False),  # query cancelled: the statement's own fault
        ("23505", False),  # unique violation
        (None, False),
    ],
)
def test_which_sqlstates_mean_the_database_cannot_serve(sqlstate, unavailable):
    class DriverError(Exception):
        pass

    orig = DriverError("x")
    orig.sqlstate = sqlstate  # type: ignore[attr-defined]
    assert is_unavailable_sqlstate(sqlstate) is unavailable
    assert is_connectivity_error(DBAPIError("SELECT 1", {}, orig)) is unavailable
