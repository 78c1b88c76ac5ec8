"""Engines, the declarative base and column types shared by every service.

Each service owns its database, so each service has its own ``MetaData``
(see :func:`service_metadata`). The platform's own tables (outbox, inbox,
deletion audits, code counters) are mapped on :class:`PlatformBase`, in
groups (:class:`PlatformTables`) each with its own ``MetaData``; a service's
database holds the groups the service uses, next to the service's tables.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    BindParameter,
    DateTime,
    MetaData,
    Table,
    Uuid,
    bindparam,
    event,
    func,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from lkern.platform.ids import new_id
from lkern.platform.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


SQLITE_QUEUE_TIMEOUT = 30.0


def service_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """An exact amount with two decimal places, stored as integer cents.

    SQLite has no decimal type (SQLAlchemy would store a float), and cents
    sort and sum exactly on every backend.
    """

    impl = BigInteger
    cache_ok = True
    #: The largest amount it holds: a signed 64-bit count of cents, on every backend.
    MAX: ClassVar[Decimal] = Decimal(2**63 - 1) / 100

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        cents = value * 100
        if cents != cents.to_integral_value():
            raise ValueError(f"{value} has more than two decimal places")
        return int(cents)

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else (Decimal(value) / 100).quantize(Decimal("0.01"))


def utcnow() -> datetime:
    return datetime.now(UTC)


class Model(DeclarativeBase):
    """Root of all mapped classes; subclasses pick their metadata."""

    __abstract__ = True
    type_annotation_map = {datetime: UTCDateTime(), uuid.UUID: Uuid(as_uuid=True)}


class PlatformTables(StrEnum):
    """The platform's tables in the groups a service takes or leaves.

    Each group has its own ``MetaData`` (:data:`PLATFORM_METADATA`) and its own
    migration branch (``platform/alembic/versions/<group>/``).
    """

    OUTBOX = "outbox"  # outbox: a service that produces events
    INBOX = "inbox"  # processed_events, dead_letters: one that consumes events
    DELETION_AUDITS = "deletion_audits"  # deletion_audits: every service
    CODE_COUNTERS = "code_counters"  # code_counters: one that gives its records codes
    REVOCATIONS = "revocations"  # token_revocations: every service (§9)


PLATFORM_METADATA: dict[PlatformTables, MetaData] = {
    group: service_metadata() for group in PlatformTables
}


def platform_table_names() -> set[str]:
    return {name for metadata in PLATFORM_METADATA.values() for name in metadata.tables}


class PlatformBase(Model):
    """Tables the platform keeps in a service's database; each model names its
    group with ``metadata = PLATFORM_METADATA[PlatformTables.…]``."""

    __abstract__ = True


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        server_default=func.now(), default=utcnow, onupdate=utcnow
    )


def create_engine(settings: Settings, service: str) -> AsyncEngine:
    """An async engine tuned for the backend the URL names."""
    url = make_url(settings.resolved_database_url(service))
    options: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            from pathlib import Path

            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"timeout": 30}
        # SQLite has one writer at a time. Waiting for it inside SQLite means
        # its busy handler's growing sleeps (25 concurrent writers: ten times
        # slower than sequential); one pooled connection makes the wait a fair
        # in-process queue. Other processes still wait on busy_timeout.
        options.update(pool_size=1, max_overflow=0, pool_timeout=SQLITE_QUEUE_TIMEOUT)
    else:
        options.update(
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
            connect_args={
                "timeout": settings.db_connect_timeout,
                "command_timeout": settings.db_statement_timeout_ms / 1000 or None,
                "server_settings": {"application_name": f"lkern-{service}"},
            },
        )
    engine = create_async_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    else:
        event.listen(engine.sync_engine, "checkin", _mark_idle)
        event.listen(engine.sync_engine, "checkout", _ping_if_idle)
    return engine


# A ping on every checkout (pool_pre_ping) is a round trip per request. A
# connection in steady use is known to be alive; only one that sat idle for a
# while may have been cut (server restart, failover, idle timeouts), so only
# such a one is pinged, and replaced when it does not answer. A connection
# lost mid-use still surfaces as a 503 and the pool is refreshed.
IDLE_BEFORE_PING_SECONDS = 5.0


def _mark_idle(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < IDLE_BEFORE_PING_SECONDS:
        return
    try:
        dbapi_connection.ping()
    except Exception as exc:
        # The pool discards this connection and checks out another.
        raise DisconnectionError(f"idle connection is gone: {exc!r}") from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Transactions are begun by us (see _sqlite_begin), not by the driver.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL never corrupts the database; only a power cut may lose
    # the last commits. It spares an fsync per commit, the embedded mode's cost.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # A deferred transaction that reads and then writes fails at once with
    # "database is locked" when another writer got in between; taking the
    # write lock up front makes writers queue on busy_timeout instead.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


def conflict_insert(target: Any, dialect: str) -> postgresql.Insert | sqlite.Insert:
    """The INSERT into ``target`` of the dialect named, which takes ``ON CONFLICT … DO
    UPDATE`` (PostgreSQL and SQLite spell it alike; the generic INSERT has no such clause)."""
    if dialect == "postgresql":
        return postgresql.insert(target)
    return sqlite.insert(target)


#: How many built multi-row statements of different sizes a cache of them keeps.
STATEMENTS_KEPT = 32


def numbered_markers(
    table: Table, columns: Sequence[str], count: int
) -> list[dict[str, BindParameter[Any]]]:
    """The VALUES of a ``count``-row INSERT into ``table``, one marker ``<column>_<n>``
    per column of each row: the statement built once serves every insert of that
    many rows (SQLAlchemy caches no multi-row VALUES, so one built per call is
    compiled per call)."""
    return [
        {column: bindparam(f"{column}_{index}", type_=table.c[column].type) for column in columns}
        for index in range(count)
    ]


def numbered_values(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """The parameters of a :func:`numbered_markers` statement for ``rows``."""
    return {
        f"{column}_{index}": value
        for index, row in enumerate(rows)
        for column, value in zip(columns, row, strict=True)
    }


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for a read of one statement: on PostgreSQL without a transaction.

    A lone SELECT sees one consistent snapshot anyway, and a BEGIN and
    ROLLBACK around it are two round trips more (docs/benchmarks.md). SQLite
    keeps its transactions (ours begin with BEGIN IMMEDIATE: ``_sqlite_begin``).
    """
    if not is_postgres(engine):
        return session_factory(engine)
    return session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))
