"""What a database error means: an outage (503), a value refused (422), or a bug.

Classified by the driver's own exception class and code, beside the engines
(db.py) whose drivers raise them; the unit of work, the read lane, the HTTP
problems and the gRPC servicers all ask here.
"""

from __future__ import annotations

import sqlite3

import asyncpg
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from lkern.platform.errors import DatabaseUnavailable, DomainError, ValueNotStorable


def is_lost_connection_sqlstate(sqlstate: str | None) -> bool:
    """Whether PostgreSQL's error code says the connection itself is gone, so a
    statement that changes nothing may run again on another: a connection
    exception (08), or the server ending this backend (57P01, 57P02)."""
    if not sqlstate:
        return False
    return sqlstate[:2] == "08" or sqlstate in ("57P01", "57P02")


def is_unavailable_sqlstate(sqlstate: str | None) -> bool:
    """Whether PostgreSQL's error code says it cannot serve now, whatever was asked:
    a lost connection (above), no connection slots or memory left (53), or a
    server still starting (57P03)."""
    if not sqlstate:
        return False
    return is_lost_connection_sqlstate(sqlstate) or sqlstate[:2] == "53" or sqlstate == "57P03"


#: SQLite's primary result codes for a database that cannot serve now: busy or
#: locked by another writer, out of memory, a disk I/O error, a full disk, a file
#: that cannot be opened, a locking protocol failure.
SQLITE_UNAVAILABLE = frozenset({5, 6, 7, 10, 13, 14, 15})
#: asyncpg's own data error: an argument it cannot encode for the column's type
#: (a value out of range, the wrong type); an InterfaceError, raised before any I/O.
_ASYNCPG_CLIENT_DATA_ERROR = asyncpg.exceptions._base.DataError


def driver_error(exc: BaseException) -> BaseException:
    """The exception the database driver itself raised, under SQLAlchemy's wrapping
    (the asyncpg dialect wraps it twice: an emulated DBAPI error, then a DBAPIError)."""
    error = exc
    while type(error).__module__.startswith("sqlalchemy"):
        inner = getattr(error, "orig", None)
        if not isinstance(inner, BaseException):
            break
        error = inner
    return error


def is_data_error(exc: BaseException) -> bool:
    """Whether the driver refused a value, which is the client's input, never an outage.

    Classified by the driver's exception class: SQLAlchemy's DataError, PostgreSQL's
    data exceptions (SQLSTATE class 22), asyncpg's client-side DataError, and
    sqlite3 refusing an integer beyond 64 bits (an OverflowError when binding, an
    "integer overflow" in arithmetic, which SQLite gives no code of its own).
    """
    if isinstance(exc, DataError):
        return True
    error = driver_error(exc)
    if isinstance(error, OverflowError | _ASYNCPG_CLIENT_DATA_ERROR | sqlite3.DataError):
        return True
    if isinstance(error, sqlite3.OperationalError):
        return str(error) == "integer overflow"
    sqlstate = getattr(error, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("22")


def is_integrity_error(exc: BaseException) -> bool:
    """Whether the database refused a write for a constraint (a unique value taken),
    raised through SQLAlchemy or by asyncpg directly (a change below the ORM)."""
    if isinstance(exc, IntegrityError | sqlite3.IntegrityError):
        return True
    sqlstate = getattr(driver_error(exc), "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("23")


def is_connectivity_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached, rather than a bad statement
    or a refused value: only real connection failures are an outage."""
    if isinstance(exc, PoolTimeout | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        if is_data_error(exc):
            return False
        error = driver_error(exc)
        if isinstance(error, OSError | ConnectionError | TimeoutError):
            return True
        if isinstance(error, sqlite3.Error):
            code = getattr(error, "sqlite_errorcode", None)
            return isinstance(code, int) and code & 0xFF in SQLITE_UNAVAILABLE
        if is_unavailable_sqlstate(getattr(error, "sqlstate", None)):
            return True
        # asyncpg's other interface errors are about the connection (closed,
        # or lost mid-operation).
        return isinstance(exc, InterfaceError)
    return isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError | PermissionError)


def database_problem(exc: BaseException) -> DomainError | None:
    """What a database failure is to the client: an outage (503), a value it refused
    (422), or None for a bug (a 500, logged)."""
    if is_connectivity_error(exc):
        return DatabaseUnavailable()
    if is_data_error(exc):
        return ValueNotStorable()
    return None
