"""How the read lane, and the unit of work, tell an unavailable database from a bad statement."""

from __future__ import annotations

import logging
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from sqlalchemy import bindparam, create_engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from lkern.contacts.models import Contact
from lkern.platform import reads
from lkern.platform.db import session_factory
from lkern.platform.db_errors import (
    database_problem,
    is_connectivity_error,
    is_lost_connection_sqlstate,
    is_unavailable_sqlstate,
)
from lkern.platform.errors import DatabaseUnavailable, ValueNotStorable
from lkern.platform.grpc.server import status_for
from lkern.platform.reads import Reader
from lkern.platform.settings import Settings
from lkern.platform.uow import UnitOfWork

BY_ID = select(Contact.id, Contact.name).where(Contact.id == bindparam("item_id"))


class FlakyPool:
    """A pool, and the connection it hands out, whose first ``failures`` statements find
    the server gone."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.fetches = 0
        self.acquired = 0
        self.released = 0
        self.terminated = 0
        self.expired = 0

    async def acquire(self, timeout: float | None = None) -> Any:
        self.acquired += 1
        return self

    async def release(self, connection: Any) -> None:
        self.released += 1

    def terminate(self) -> None:
        self.terminated += 1

    async def expire_connections(self) -> None:
        self.expired += 1

    def lose(self) -> None:
        self.fetches += 1
        if self.fetches <= self.failures:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")

    async def fetch(self, sql: str, *arguments: Any) -> list[dict[str, Any]]:
        self.lose()
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
    # The lost connection is closed, the others are replaced on their next use (a
    # server restart took them all), and every connection taken is given back.
    assert (pool.terminated, pool.expired) == (1, 1)
    assert pool.released == pool.acquired == 2


async def test_a_read_that_keeps_losing_it_is_an_outage():
    pool = FlakyPool(failures=2)
    with pytest.raises(DatabaseUnavailable):
        await reader_with(pool).one_or_none(BY_ID, {"item_id": uuid.uuid4()})
    assert pool.fetches == 2
    assert pool.released == pool.acquired == 2


@pytest.mark.parametrize(
    "gone",
    [
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle"),
        # What a pooled connection raises whose server's goodbye was read, its close not.
        asyncpg.InternalClientError("cannot switch to state 15; another operation (2)"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    ],
)
async def test_a_read_on_a_connection_the_server_ended_runs_on_a_new_one(gone):
    class EndedOnce(FlakyPool):
        def lose(self) -> None:
            self.fetches += 1
            if self.fetches == 1:
                raise gone

    pool = EndedOnce(failures=0)
    assert await reader_with(pool).one_or_none(BY_ID, {"item_id": 1}) is not None
    assert (pool.fetches, pool.terminated) == (2, 1)


async def test_a_statement_error_is_not_run_again_and_keeps_the_connection():
    class Refused(FlakyPool):
        def lose(self) -> None:
            self.fetches += 1
            raise asyncpg.UndefinedColumnError("column does not exist")

    pool = Refused(failures=0)
    with pytest.raises(asyncpg.UndefinedColumnError):
        await reader_with(pool).one_or_none(BY_ID, {"item_id": 1})
    assert (pool.fetches, pool.terminated, pool.expired) == (1, 0, 0)
    assert pool.released == pool.acquired == 1


class RefusingPool(FlakyPool):
    """A server out of connection slots refuses every new client."""

    async def acquire(self, timeout: float | None = None) -> Any:
        raise asyncpg.TooManyConnectionsError("sorry, too many clients already")


async def test_a_server_out_of_connections_is_an_outage_not_an_error():
    with pytest.raises(DatabaseUnavailable):
        await reader_with(RefusingPool(0)).one_or_none(BY_ID, {"item_id": uuid.uuid4()})


class FlakyBegin(FlakyPool):
    """Connections whose first ``failures`` BEGINs find the server gone."""

    def transaction(self) -> FlakyBegin:
        return self

    async def start(self) -> None:
        self.lose()


async def test_a_begin_that_lost_its_connection_runs_once_more_on_a_new_one():
    """Nothing ran yet, so the transaction below the ORM starts again elsewhere."""
    pool = FlakyBegin(failures=1)
    transaction = await reader_with(pool).begin()
    assert (pool.fetches, pool.terminated, pool.expired) == (2, 1, 1)
    assert (pool.acquired, pool.released) == (2, 1)
    assert transaction is not None


async def test_a_begin_that_keeps_losing_it_is_an_outage():
    pool = FlakyBegin(failures=2)
    with pytest.raises(DatabaseUnavailable):
        await reader_with(pool).begin()
    assert pool.released == pool.acquired == 2


class LosingConnection:
    """A pooled connection whose statements find the server gone mid-transaction."""

    def __init__(self) -> None:
        self.fetches = 0
        self.released = 0
        self.open = False

    async def acquire(self) -> LosingConnection:
        return self

    async def release(self, connection: LosingConnection) -> None:
        self.released += 1

    def transaction(self) -> LosingConnection:
        return self

    async def start(self) -> None:
        self.open = True

    async def rollback(self) -> None:
        self.open = False

    def is_in_transaction(self) -> bool:
        return self.open

    async def fetch(self, sql: str, *arguments: Any) -> list[dict[str, Any]]:
        self.fetches += 1
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")


async def test_a_direct_change_that_lost_its_connection_is_an_outage_and_not_run_again():
    """Its transaction went with the connection: running the statement again elsewhere
    would apply half a change."""
    connection = LosingConnection()
    reader = reader_with(connection)  # type: ignore[arg-type]
    uow = UnitOfWork(session_factory(reader._engine), reader=reader)
    with pytest.raises(DatabaseUnavailable):
        async with uow.direct():
            await uow.row(BY_ID, item_id=uuid.uuid4())
    assert connection.fetches == 1
    assert connection.released == 1
    assert not connection.open


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


@pytest.mark.parametrize(
    ("sqlstate", "lost"),
    [
        ("08006", True),  # connection failure
        ("57P01", True),  # admin shutdown: this backend was ended
        ("57P03", False),  # cannot connect now: a new connection, not this one
        ("53300", False),  # too many connections
        ("57014", False),  # query cancelled
        (None, False),
    ],
)
def test_which_sqlstates_mean_the_connection_is_gone(sqlstate, lost):
    """A lost connection is one kind of unavailable: a read may run again elsewhere."""
    assert is_lost_connection_sqlstate(sqlstate) is lost
    if lost:
        assert is_unavailable_sqlstate(sqlstate)


def asyncpg_error(driver_error: Exception) -> DBAPIError:
    """``driver_error`` as SQLAlchemy's asyncpg dialect hands it on: translated into the
    dialect's emulated DBAPI class, then wrapped."""
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi as dbapi

    translate = {
        asyncpg.InterfaceError: dbapi.InterfaceError,
        asyncpg.PostgresError: dbapi.Error,
    }
    kind = next(translate[base] for base in type(driver_error).__mro__ if base in translate)
    adapted = kind(str(driver_error), driver_error)
    wrapped = DBAPIError.instance("INSERT …", {}, adapted, dbapi.Error)
    assert isinstance(wrapped, DBAPIError)
    return wrapped


def sqlite_error(sql: str, params: dict[str, Any] | None = None) -> BaseException:
    """What SQLAlchemy over the sqlite3 driver raises for ``sql``, for real."""
    engine = create_engine("sqlite://")
    try:
        with engine.connect() as connection:
            connection.execute(text(sql), params or {})
    except Exception as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{sql} did not fail")


def sqlite_locked(tmp_path: Path) -> BaseException:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    except Exception as exc:
        return exc
    finally:
        engine.dispose()
        holder.close()
    raise AssertionError("the database was not locked")


DATA_ERRORS = {
    "asyncpg: an argument out of int64 range": lambda _: asyncpg_error(
        asyncpg.DataError("invalid input for query argument $5: 10**20 (value out of int64 range)")
    ),
    "asyncpg: a numeric field overflow": lambda _: asyncpg_error(
        asyncpg.NumericValueOutOfRangeError("numeric field overflow")
    ),
    "asyncpg: its client-side data error": lambda _: asyncpg_error(
        asyncpg.exceptions._base.DataError("invalid input for query argument $1")
    ),
    "sqlite: an integer too large to bind": lambda _: sqlite_error("SELECT :x", {"x": 2**64}),
    "sqlite: integer overflow in arithmetic": lambda _: sqlite_error(
        "SELECT abs(-9223372036854775808)"
    ),
    "sqlite: a value too big": lambda _: sqlite_error("SELECT zeroblob(2000000000)"),
}
OUTAGES = {
    "asyncpg: connection lost": lambda _: asyncpg_error(
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    ),
    "asyncpg: server starting": lambda _: asyncpg_error(
        asyncpg.CannotConnectNowError("the database system is starting up")
    ),
    "asyncpg: connection closed": lambda _: asyncpg_error(
        asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed")
    ),
    "sqlite: database locked": sqlite_locked,
}
BUGS = {
    "asyncpg: unique violation": lambda _: asyncpg_error(
        asyncpg.UniqueViolationError("duplicate key value violates unique constraint")
    ),
    "sqlite: no such table": lambda _: sqlite_error("SELECT * FROM nowhere"),
    "sqlite: syntax": lambda _: sqlite_error("SELEC 1"),
}


@pytest.mark.parametrize("make", DATA_ERRORS.values(), ids=DATA_ERRORS.keys())
def test_a_value_the_driver_refuses_is_the_clients_error_not_an_outage(make, tmp_path):
    error = make(tmp_path)
    assert not is_connectivity_error(error)
    assert isinstance(database_problem(error), ValueNotStorable)
    assert status_for(error)[0] is grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("make", OUTAGES.values(), ids=OUTAGES.keys())
def test_only_a_database_that_cannot_serve_is_an_outage(make, tmp_path):
    error = make(tmp_path)
    assert is_connectivity_error(error)
    assert isinstance(database_problem(error), DatabaseUnavailable)
    assert status_for(error)[0] is grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("make", BUGS.values(), ids=BUGS.keys())
def test_a_bad_statement_is_neither(make, tmp_path):
    error = make(tmp_path)
    assert database_problem(error) is None
    assert status_for(error)[0] is grpc.StatusCode.INTERNAL


async def test_a_unit_of_work_answers_a_refused_value_with_a_422():
    engine = create_async_engine("sqlite+aiosqlite://")
    uow = UnitOfWork(session_factory(engine), reader=Reader(engine, Settings(), "contacts"))
    try:
        with pytest.raises(ValueNotStorable) as refused:
            async with uow:
                await uow.session.execute(text("SELECT :x"), {"x": 2**64})
        assert refused.value.status == 422 and refused.value.extra["errors"] == []
    finally:
        await engine.dispose()


async def test_after_commit_runs_only_for_a_committed_transaction():
    engine = create_async_engine("sqlite+aiosqlite://")
    uow = UnitOfWork(session_factory(engine), reader=Reader(engine, Settings(), "contacts"))
    ran: list[str] = []
    try:
        async with uow:
            uow.after_commit(lambda: ran.append("rolled back"))
            await uow.session.execute(text("SELECT 1"))
        async with uow:
            uow.after_commit(lambda: ran.append("committed"))
            await uow.session.execute(text("SELECT 1"))
            assert ran == []  # not before the commit
            await uow.commit()
        assert ran == ["committed"]
    finally:
        await engine.dispose()


def test_logged_parameters_are_cut_as_the_engine_cuts_them(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine.Engine")
    reads._log_statement("INSERT …", ["x" * 5000, 7], None)
    reads._log_statement("INSERT …", [[n] for n in range(5)], 5)
    reads._log_statement("INSERT …", [[n] for n in range(3)], 3)
    single, rows, three = (r.getMessage() for r in caplog.records if r.getMessage().startswith("["))
    assert len(single) < 700 and "characters cut" in single and single.endswith(", 7)")
    assert rows == "[below the ORM, 5 rows] [(0), (1), ... 2 more ..., (4)]"
    assert three == "[below the ORM, 3 rows] [(0), (1), (2)]"
