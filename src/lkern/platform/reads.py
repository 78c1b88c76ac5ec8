"""Statements below the ORM: reads of one statement, and transactions of Core statements.

A use case that answers with one SELECT needs nothing of the ORM session
(identity map, flush bookkeeping, transaction state) and, on PostgreSQL,
nothing of SQLAlchemy's connection wrapper either, whose CPU cost is most of
such a read's (docs/benchmarks.md). So on PostgreSQL the :class:`Reader` runs such
statements on an asyncpg pool of its own, outside any transaction; on other
databases (SQLite, the embedded default) it runs them as Core statements on
the engine. Statements are still written with SQLAlchemy and compiled once;
values pass through the columns' own types both ways, so a row reads the
same as through the ORM.

A write made only of such statements (a stock change: a handful of conditional
UPDATEs and INSERTs) pays the same ORM and wrapper cost per statement, so
:meth:`Reader.begin` gives it a transaction of its own on the same pool
(:class:`PoolTransaction`), or on SQLite on the engine (:class:`CoreStatements`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import asyncpg
from opentelemetry.trace import Tracer
from sqlalchemy import ColumnElement, Select, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.dml import UpdateBase

from lkern.platform.db import is_postgres
from lkern.platform.db_errors import is_lost_connection_sqlstate, is_unavailable_sqlstate
from lkern.platform.errors import DatabaseUnavailable
from lkern.platform.settings import Settings
from lkern.platform.telemetry import StatementSpans, fail

logger = logging.getLogger(__name__)
#: The engine's own statement logger: one switch (``sqlalchemy.engine`` at INFO)
#: shows the statements of requests and commands, below the ORM too (the
#: relay's, on its own driver connection, are not logged).
_STATEMENTS = logging.getLogger("sqlalchemy.engine.Engine")
#: Longest a logged parameter is shown, as the engine cuts them.
SHOWN_PARAMETER_LENGTH = 300

Row = Mapping[str, Any]
#: A SELECT of any columns or entities.
AnySelect = Select[*tuple[Any, ...]]
#: What a transaction below the ORM runs: a SELECT, or an INSERT, UPDATE or DELETE
#: (its rows are those of its RETURNING, if any).
AnyStatement = AnySelect | UpdateBase
Processor = Callable[[Any], Any] | None
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One statement as asyncpg runs it: SQL with $n markers and the value converters."""

    sql: str
    names: tuple[str, ...]
    defaults: Mapping[str, Any]
    #: Columns an INSERT or UPDATE fills from their Python-side default or onupdate
    #: when not given, computed per call as the engine would.
    generated: Mapping[str, Callable[[], Any]]
    binds: tuple[Processor, ...]
    keys: tuple[str, ...]
    results: tuple[Processor, ...]

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, process in zip(self.names, self.binds, strict=True):
            if name in params:
                value = params[name]
            elif name in self.generated:
                value = self.generated[name]()
            else:
                value = self.defaults[name]
            values.append(value if process is None or value is None else process(value))
        return values

    def row(self, record: asyncpg.Record) -> Row:
        return {
            key: value if process is None else process(value)
            for key, value, process in zip(self.keys, record.values(), self.results, strict=True)
        }


#: A statement as :func:`compile_statement` gives it.
CompiledStatement = _Compiled


def compile_statement(stmt: AnyStatement, dialect: Dialect) -> CompiledStatement:
    """``stmt`` compiled once for asyncpg: its SQL, and how values pass in and out;
    for a statement run on an asyncpg connection of its own (the outbox relay's)."""
    return _compile(stmt, dialect)


def _compile(stmt: AnyStatement, dialect: Dialect) -> _Compiled:
    compiled = stmt.compile(dialect=dialect)
    if compiled.positiontup is None:
        raise ValueError(f"the {dialect.name} dialect does not compile to positional markers")
    if compiled.literal_execute_params or compiled.post_compile_params:
        # "IN (:ids)" and the like render per call; a read compiled once cannot hold them.
        raise ValueError("a read statement cannot have expanding parameters; use ANY(:array)")
    names = tuple(compiled.positiontup)
    return _Compiled(
        sql=compiled.string,
        names=names,
        generated=_generated(compiled),
        defaults={
            name: param.effective_value
            for name, param in ((n, compiled.binds[n]) for n in names)
            if not param.required
        },
        binds=tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in names
        ),
        keys=tuple(str(column.key) for column in stmt.exported_columns),
        results=tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in stmt.exported_columns
        ),
    )


def _generated(compiled: Any) -> dict[str, Callable[[], Any]]:
    generated: dict[str, Callable[[], Any]] = {}
    for columns, kind in (
        (compiled.insert_prefetch, "default"),
        (compiled.update_prefetch, "onupdate"),
    ):
        for column in columns:
            default = getattr(column, kind)
            if default is None or not (default.is_scalar or default.is_callable):
                raise ValueError(f"{column} has a default asyncpg cannot compute before the call")
            # SQLAlchemy wraps a callable default to take the execution context.
            generated[column.key] = (
                functools.partial(default.arg, None)
                if default.is_callable
                else functools.partial(lambda value: value, default.arg)
            )
    return generated


async def _decode_json(connection: asyncpg.Connection) -> None:
    """JSON columns read as Python values, as through the engine: SQLAlchemy's
    asyncpg dialect installs the same codecs on its own connections (the
    columns' bind processors hand over JSON text, which passes through)."""
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=_text, decoder=json.loads, schema="pg_catalog", format="text"
        )


def _text(value: str) -> str:
    return value


async def _keep_session_state(connection: asyncpg.Connection) -> None:
    """Reads and the transactions below the ORM change no session state, so a returned
    connection needs no RESET ALL (asyncpg's default reset is one more round trip per
    read); only a transaction left open (a task cancelled mid-way) is rolled back."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


# asyncpg's own errors that mean the connection, not the statement, failed. An
# InternalClientError ("cannot switch to state …") is what a connection raises
# whose server already said goodbye (a terminated backend) but whose close was
# not yet read.
CONNECTION_ERRORS = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.InternalClientError,
)


def _connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection is gone: asyncpg's own errors, or the
    server's code for it."""
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    return isinstance(exc, asyncpg.PostgresError) and is_lost_connection_sqlstate(exc.sqlstate)


def one_of(
    column: ColumnElement[Any] | InstrumentedAttribute[Any], name: str, dialect: str
) -> ColumnElement[bool]:
    """``column`` equal to one of the values bound as ``name`` (a list): ``= ANY(:name)``
    on PostgreSQL, where a statement is compiled once, and an expanding ``IN`` elsewhere."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


class Statements(Protocol):
    """Runs statements in one transaction, below the ORM."""

    async def all(self, stmt: AnyStatement, params: Mapping[str, Any]) -> Sequence[Row]: ...

    async def execute(self, stmt: AnyStatement, params: Mapping[str, Any]) -> int:
        """Run a statement without RETURNING; answers how many rows it changed."""
        ...

    async def execute_many(self, stmt: AnyStatement, rows: Sequence[Mapping[str, Any]]) -> None: ...


class CoreStatements:
    """Statements as Core executions on a SQLAlchemy connection: on SQLite, and in the
    transaction of an ORM session (where they skip the session's bookkeeping)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def all(self, stmt: AnyStatement, params: Mapping[str, Any]) -> Sequence[Row]:
        result = await self.connection.execute(stmt, dict(params))
        return [dict(row) for row in result.mappings()] if result.returns_rows else []

    async def execute(self, stmt: AnyStatement, params: Mapping[str, Any]) -> int:
        result = await self.connection.execute(stmt, dict(params))
        return int(result.rowcount)

    async def execute_many(self, stmt: AnyStatement, rows: Sequence[Mapping[str, Any]]) -> None:
        await self.connection.execute(stmt, [dict(row) for row in rows])

    async def commit(self) -> None:
        await self.connection.commit()

    async def close(self) -> None:
        """Roll back what was not committed and give the connection back."""
        await self.connection.close()


class PoolTransaction:
    """A transaction on a connection of the reader's asyncpg pool (PostgreSQL).

    Unlike a read, a statement that lost its connection is not run again: the
    transaction is gone with it, and the use case is an outage (a 503).
    """

    def __init__(self, reader: Reader, connection: asyncpg.pool.PoolConnectionProxy) -> None:
        self._reader = reader
        self._connection = connection
        self._transaction = connection.transaction()

    async def start(self) -> None:
        await _guarded(self._transaction.start())

    async def all(self, stmt: AnyStatement, params: Mapping[str, Any]) -> Sequence[Row]:
        compiled = self._reader.compiled(stmt)
        arguments = compiled.arguments(params)
        records = await self._reader.traced(
            compiled.sql,
            lambda: _guarded(self._connection.fetch(compiled.sql, *arguments)),
            arguments,
        )
        return [compiled.row(record) for record in records]

    async def execute(self, stmt: AnyStatement, params: Mapping[str, Any]) -> int:
        compiled = self._reader.compiled(stmt)
        arguments = compiled.arguments(params)
        status = await self._reader.traced(
            compiled.sql,
            lambda: _guarded(self._connection.execute(compiled.sql, *arguments)),
            arguments,
        )
        # The command tag: "UPDATE 1", "DELETE 0", "INSERT 0 1".
        count = str(status).rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def execute_many(self, stmt: AnyStatement, rows: Sequence[Mapping[str, Any]]) -> None:
        compiled = self._reader.compiled(stmt)
        arguments = [compiled.arguments(row) for row in rows]
        await self._reader.traced(
            compiled.sql,
            lambda: _guarded(self._connection.executemany(compiled.sql, arguments)),
            arguments,
            batch_size=len(rows),
        )

    async def commit(self) -> None:
        await _guarded(self._transaction.commit())

    async def close(self) -> None:
        """Roll back what was not committed and give the connection back."""
        try:
            if self._connection.is_in_transaction():
                await self._transaction.rollback()
        except CONNECTION_ERRORS as exc:
            logger.warning("rollback lost its database connection: %r", exc)
        finally:
            await self._reader.release(self._connection)


def _log_statement(sql: str, arguments: Sequence[Any], batch_size: int | None) -> None:
    # As the engine does: the statement, then its parameters on a line of their own,
    # long values cut; the log formatter masks what its patterns know (addresses,
    # phone numbers, secrets) on that line as on the engine's.
    _STATEMENTS.info("%s", sql)
    if batch_size is None:
        _STATEMENTS.info("[below the ORM] %s", _shown(arguments))
        return
    rows = [_shown(row) for row in list(arguments)[:2]]
    if batch_size > 3:
        rows.append(f"... {batch_size - 3} more ...")
    if batch_size > 2:
        rows.append(_shown(arguments[-1]))
    _STATEMENTS.info("[below the ORM, %d rows] [%s]", batch_size, ", ".join(rows))


def _shown(values: Sequence[Any]) -> str:
    shown = []
    for value in values:
        text = repr(value)
        if len(text) > SHOWN_PARAMETER_LENGTH:
            cut = len(text) - SHOWN_PARAMETER_LENGTH
            text = (
                f"{text[: SHOWN_PARAMETER_LENGTH // 2]} ... ({cut} characters cut) ... "
                + (text[-SHOWN_PARAMETER_LENGTH // 2 :])
            )
        shown.append(text)
    return f"({', '.join(shown)})"


async def _guarded(step: Awaitable[T]) -> T:
    """``step``, with a lost connection or a server that cannot serve now as an outage."""
    try:
        return await step
    except TimeoutError as exc:
        raise DatabaseUnavailable() from exc
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable() from exc
    except asyncpg.PostgresError as exc:
        if is_unavailable_sqlstate(exc.sqlstate):
            raise DatabaseUnavailable() from exc
        raise


class Reader:
    """Runs single SELECTs for one service's read-only use cases.

    Statements are compiled on first use and remembered for as long as the
    statement object lives, so build them once (module level or memoised),
    with named ``bindparam``s for the values that change.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        service: str,
        *,
        tracer: Tracer | None = None,
    ) -> None:
        self._engine = engine
        # The engine's statements are traced by its events (bootstrap.py);
        # the pool's, here.
        self._spans = StatementSpans(tracer, engine.url) if tracer is not None else None
        self._settings = settings
        self._service = service
        self._compiled: weakref.WeakKeyDictionary[AnyStatement, _Compiled] = (
            weakref.WeakKeyDictionary()
        )
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._direct = is_postgres(engine)

    @property
    def dialect(self) -> str:
        """The database's dialect name (``postgresql``, ``sqlite``)."""
        return str(self._engine.dialect.name)

    def compiled(self, stmt: AnyStatement) -> _Compiled:
        """``stmt`` as asyncpg runs it, compiled on first use."""
        compiled = self._compiled.get(stmt)
        if compiled is None:
            compiled = self._compiled[stmt] = _compile(stmt, self._engine.dialect)
        return compiled

    async def traced(
        self,
        sql: str,
        run: Callable[[], Awaitable[T]],
        arguments: Sequence[Any],
        batch_size: int | None = None,
    ) -> T:
        """``run()``, in a span of ``sql`` when the request is traced, and logged as the
        engine logs its statements when that is switched on."""
        if _STATEMENTS.isEnabledFor(logging.INFO):
            _log_statement(sql, arguments, batch_size)
        span = self._spans.start(sql, batch_size) if self._spans is not None else None
        if span is None:
            return await run()
        try:
            return await run()
        except BaseException as exc:
            fail(span, exc)
            raise
        finally:
            span.end()

    async def all(self, stmt: AnyStatement, params: Mapping[str, Any]) -> Sequence[Row]:
        if not self._direct:
            async with self._engine.connect() as connection:
                result = await connection.execute(stmt, dict(params))
                return [dict(row) for row in result.mappings()]
        compiled = self.compiled(stmt)
        arguments = compiled.arguments(params)
        records = await self.traced(
            compiled.sql, lambda: self._fetch(compiled.sql, arguments), arguments
        )
        return [compiled.row(record) for record in records]

    async def begin(self) -> PoolTransaction | CoreStatements:
        """A transaction of its own for a use case of Core statements alone; the
        caller commits it, and closes it in every case (which rolls back the rest)."""
        if not self._direct:
            # SQLite: the engine's connection begins with BEGIN IMMEDIATE (db.py).
            connection = await self._engine.connect()
            try:
                await connection.begin()
            except BaseException:
                await connection.close()
                raise
            return CoreStatements(connection)
        # BEGIN changes nothing, so one that found its connection gone runs again
        # on a new one, as a read does.
        _, transaction = await self._on_live_connection(self._begun)
        return transaction

    async def _begun(self, connection: asyncpg.pool.PoolConnectionProxy) -> PoolTransaction:
        transaction = PoolTransaction(self, connection)
        await transaction.start()
        return transaction

    async def release(self, connection: asyncpg.pool.PoolConnectionProxy) -> None:
        if self._pool is not None:
            await self._pool.release(connection)

    async def _discard(
        self, pool: asyncpg.Pool, connection: asyncpg.pool.PoolConnectionProxy
    ) -> None:
        """Close a connection found gone, and have every other idle one replaced on
        its next use: a lost connection is most often a server restart, which
        took them all (the pool's reset checks nothing, to save a round trip)."""
        # asyncpg gives back by itself a connection whose close it saw.
        with contextlib.suppress(asyncpg.InterfaceError):
            connection.terminate()
        await pool.release(connection)
        await pool.expire_connections()

    async def one_or_none(self, stmt: AnyStatement, params: Mapping[str, Any]) -> Row | None:
        rows = await self.all(stmt, params)
        if len(rows) > 1:
            raise LookupError(f"expected at most one row, got {len(rows)}")
        return rows[0] if rows else None

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _fetch(self, sql: str, arguments: list[Any]) -> list[asyncpg.Record]:
        connection, records = await self._on_live_connection(
            lambda connection: connection.fetch(sql, *arguments)
        )
        await self.release(connection)
        fetched: list[asyncpg.Record] = records
        return fetched

    async def _on_live_connection(
        self, first: Callable[[asyncpg.pool.PoolConnectionProxy], Awaitable[T]]
    ) -> tuple[asyncpg.pool.PoolConnectionProxy, T]:
        """A pooled connection and what ``first`` answered on it; the caller releases it.

        ``first`` must change nothing (a read, a BEGIN): one that found its
        connection gone (a server restart, a cut idle connection) is safely run
        again, once, on a new connection.
        """
        for attempt in (1, 2):
            pool: asyncpg.Pool = self._pool or await _guarded(self._open_pool())
            # No acquire timeout: asyncpg would run each acquire as a task of
            # its own, for every read. A wait is bounded anyway:
            # every holder gives its connection back within the statement
            # timeout, and admission control lets in no more requests than
            # the pool has connections.
            connection = await _guarded(pool.acquire())
            try:
                return connection, await _guarded(first(connection))
            except DatabaseUnavailable as exc:
                lost = _connection_lost(exc.__cause__ or exc)
                if lost:
                    await self._discard(pool, connection)
                else:
                    await pool.release(connection)
                if attempt == 2 or not lost:
                    raise
                logger.warning("database connection found gone, retrying once: %r", exc.__cause__)
            except BaseException:
                await pool.release(connection)
                raise
        raise AssertionError("unreachable")

    async def _open_pool(self) -> asyncpg.Pool:
        async with self._pool_lock:
            if self._pool is None:
                settings = self._settings
                url = self._engine.url.set(drivername="postgresql")
                self._pool = await asyncpg.create_pool(
                    url.render_as_string(hide_password=False),
                    # Opened as reads need them and closed after 10 s unused, so
                    # an idle service holds none. As large as the main pool:
                    # the transactions below the ORM (stock changes) hold theirs
                    # for the whole change, and admission lets in only as many
                    # requests as the main pool has.
                    min_size=0,
                    max_size=max(2, settings.db_pool_size),
                    max_inactive_connection_lifetime=10,
                    reset=_keep_session_state,
                    init=_decode_json,
                    timeout=settings.db_connect_timeout,
                    command_timeout=settings.db_statement_timeout_ms / 1000 or None,
                    server_settings={"application_name": f"lkern-{self._service}"},
                )
            return self._pool
