"""A PostgreSQL server for the tests: the machine's own, or a private one started here.

``LKERN_TEST_POSTGRES_URL`` names a server to use (an asyncpg URL to an
administrative database). Otherwise 127.0.0.1:5432 is tried, and if nothing
answers, a throw-away cluster is initialised and started on a free port, then
stopped when the test run ends.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


class PostgresUnavailable(RuntimeError):
    pass


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _can_connect(url: str) -> bool:
    try:
        connection = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _private_cluster() -> Iterator[str]:
    if not PG_BIN_DIRS:
        raise PostgresUnavailable("no PostgreSQL server answers and no binaries to start one")
    bin_dir = PG_BIN_DIRS[0]
    root = Path(tempfile.mkdtemp(prefix="lkern-pg-"))
    data = root / "data"
    port = _free_port()
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(root, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    run = lambda *args: subprocess.run([*as_postgres, *args], check=True, capture_output=True)  # noqa: E731
    run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync")
    options = f"-p {port} -h 127.0.0.1 -k {root} -F -c fsync=off -c max_connections=300"
    run(
        str(bin_dir / "pg_ctl"),
        "-w",
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(root / "log"),
        "start",
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an admin URL (``postgresql://``) of a running server."""
    url = os.environ.get("LKERN_TEST_POSTGRES_URL", DEFAULT_URL).replace("+asyncpg", "")
    if run_sync(_can_connect(url)):
        yield url
        return
    if "LKERN_TEST_POSTGRES_URL" in os.environ:
        raise PostgresUnavailable(f"LKERN_TEST_POSTGRES_URL does not answer: {url}")
    try:
        with _private_cluster() as private_url:
            yield private_url
    except subprocess.CalledProcessError as exc:
        raise PostgresUnavailable(f"could not start a private PostgreSQL: {exc.stderr!r}") from exc


async def create_database(admin_url: str, prefix: str = "lkern_test") -> str:
    """Create a uniquely named database; return its asyncpg SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


async def drop_database(admin_url: str, database_url: str) -> None:
    name = database_url.rsplit("/", 1)[1]
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
