"""Reads of one statement, below the ORM.

A use case that answers with one SELECT needs nothing of the ORM session
(identity map, flush bookkeeping, transaction state) and, on PostgreSQL,
nothing of SQLAlchemy's connection wrapper either, whose CPU cost is most of
such a read's (docs/benchmarks.md). So on PostgreSQL the :class:`Reader` runs such
statements on an asyncpg pool of its own, outside any transaction; on other
databases (SQLite, the embedded default) it runs them as Core statements on
the engine. Statements are still written with SQLAlchemy and compiled once;
values pass through the columns' own types both ways, so a row reads the
same as through the ORM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from opentelemetry.trace import Tracer
from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from lkern.platform.db import is_postgres
from lkern.platform.db_errors import is_unavailable_sqlstate
from lkern.platform.errors import DatabaseUnavailable
from lkern.platform.settings import Settings
from lkern.platform.telemetry import StatementSpans, fail

logger = logging.getLogger(__name__)

Row = Mapping[str, Any]
#: A SELECT of any columns or entities.
AnySelect = Select[*tuple[Any, ...]]
Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One statement as asyncpg runs it: SQL with $n markers and the value converters."""

    sql: str
    names: tuple[str, ...]
    defaults: Mapping[str, Any]
    binds: tuple[Processor, ...]
    keys: tuple[str, ...]
    results: tuple[Processor, ...]

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, process in zip(self.names, self.binds, strict=True):
            value = params[name] if name in params else self.defaults[name]
            values.append(value if process is None or value is None else process(value))
        return values

    def row(self, record: asyncpg.Record) -> Row:
        return {
            key: value if process is None else process(value)
            for key, value, process in zip(self.keys, record.values(), self.results, strict=True)
        }


def _compile(stmt: AnySelect, dialect: Dialect) -> _Compiled:
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
        defaults={
            name: param.effective_value
            for name, param in ((n, compiled.binds[n]) for n in names)
            if not param.required
        },
        binds=tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in names
        ),
        keys=tuple(str(column.key) for column in stmt.selected_columns),
        results=tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in stmt.selected_columns
        ),
    )


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


async def _keep_session_state(_connection: asyncpg.Connection) -> None:
    """Reads change no session state, so a returned connection needs no RESET ALL
    (asyncpg's default reset is one more round trip per read)."""


# asyncpg's own errors that mean the connection, not the statement, failed.
_CONNECTION_ERRORS = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError)


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
        self._compiled: weakref.WeakKeyDictionary[AnySelect, _Compiled] = (
            weakref.WeakKeyDictionary()
        )
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._direct = is_postgres(engine)

    async def all(self, stmt: AnySelect, params: Mapping[str, Any]) -> Sequence[Row]:
        if not self._direct:
            async with self._engine.connect() as connection:
                result = await connection.execute(stmt, dict(params))
                return [dict(row) for row in result.mappings()]
        compiled = self._compiled.get(stmt)
        if compiled is None:
            compiled = self._compiled[stmt] = _compile(stmt, self._engine.dialect)
        span = self._spans.start(compiled.sql) if self._spans is not None else None
        if span is None:
            records = await self._fetch(compiled.sql, compiled.arguments(params))
        else:
            try:
                records = await self._fetch(compiled.sql, compiled.arguments(params))
            except BaseException as exc:
                fail(span, exc)
                raise
            finally:
                span.end()
        return [compiled.row(record) for record in records]

    async def one_or_none(self, stmt: AnySelect, params: Mapping[str, Any]) -> Row | None:
        rows = await self.all(stmt, params)
        if len(rows) > 1:
            raise LookupError(f"expected at most one row, got {len(rows)}")
        return rows[0] if rows else None

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _fetch(self, sql: str, arguments: list[Any]) -> list[asyncpg.Record]:
        # A read changes nothing, so one that lost its connection (a server
        # restart, a cut idle connection) is safely run again on a new one.
        for attempt in (1, 2):
            try:
                pool = self._pool or await self._open_pool()
                # No acquire timeout: asyncpg would run each acquire as a task of
                # its own, for every read. A wait is bounded anyway:
                # every holder gives its connection back within the statement
                # timeout, and admission control lets in no more requests than
                # the pool has connections.
                async with pool.acquire() as connection:
                    records: list[asyncpg.Record] = await connection.fetch(sql, *arguments)
                    return records
            except TimeoutError as exc:
                raise DatabaseUnavailable() from exc
            except _CONNECTION_ERRORS as exc:
                if attempt == 2:
                    raise DatabaseUnavailable() from exc
                logger.warning("read lost its database connection, retrying once: %r", exc)
            except asyncpg.PostgresError as exc:
                if is_unavailable_sqlstate(exc.sqlstate):
                    raise DatabaseUnavailable() from exc
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
                    # an idle service holds none. Half the main pool is plenty:
                    # a read holds its connection for one statement, and
                    # admission lets in only as many requests as the main pool has.
                    min_size=0,
                    max_size=max(2, settings.db_pool_size // 2),
                    max_inactive_connection_lifetime=10,
                    reset=_keep_session_state,
                    init=_decode_json,
                    timeout=settings.db_connect_timeout,
                    command_timeout=settings.db_statement_timeout_ms / 1000 or None,
                    server_settings={"application_name": f"lkern-{self._service}"},
                )
            return self._pool
