"""The system under measurement: PostgreSQL, tansu, the services and the floor apps.

Services run as ``lkern serve`` processes in production mode, so they refuse
anything a production deployment would refuse; only the rate limits are
raised, since all the load comes from one user and one address. The server
starters are the test suite's own, so the bench and the tests run the same
PostgreSQL, broker and S3 server. Issues, its S3 server (moto) and its floor
start only for the workloads that use them (W6, W7); inventory (its documents on
local files, which W8 does not touch) and its floor only for W8.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from tests.support.postgres import postgres_server, run_sync
from tests.support.processes import LkernProcess, free_port
from tests.support.s3 import CREDENTIALS, MotoServer
from tests.support.tansu import TansuBroker
from tests.support.tokens import TEST_KEY_PEM

ADMIN_EMAIL = "bench@example.com"
ADMIN_PASSWORD = secrets.token_urlsafe(16)
SERVICE_SECRET = secrets.token_urlsafe(32)
DATABASES = ("identity", "contacts", "orders", "issues", "inventory")
BUCKET = "lkern-bench"


@dataclass
class Served:
    name: str
    base_url: str
    grpc_port: int | None = None
    process: LkernProcess | subprocess.Popen[bytes] | None = None


@dataclass
class Stack:
    work_dir: Path
    admin_url: str
    database_urls: dict[str, str]
    broker: TansuBroker
    services: dict[str, Served] = field(default_factory=dict)
    #: The floor ("floor"), the floor with L-KERN's request layers ("layers") and,
    #: with issues, issues' floor ("issues-floor"), with inventory its ("inventory-floor").
    floors: dict[str, Served] = field(default_factory=dict)
    #: Connections each service keeps (and may add as many again); the floors alike.
    pool_size: int = 10
    #: The S3 server issues keeps its files on, when issues runs.
    s3: MotoServer | None = None
    #: Worker processes of the second contacts (``contacts-workers``), when it runs.
    workers: int = 1

    def token(self) -> str:
        """A fresh access token of the bench's admin, from identity's token endpoint."""
        response = httpx.post(
            f"{self.services['identity'].base_url}/api/v1/auth/token",
            data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def url(self, name: str) -> str:
        if name in self.floors:
            return self.floors[name].base_url
        return self.services[name].base_url

    def pid(self, name: str) -> int:
        """The process id of a service or floor, to read its memory from /proc."""
        process = (self.floors.get(name) or self.services[name]).process
        if isinstance(process, LkernProcess):
            process = process.process
        assert process is not None
        return process.pid

    def plain_url(self, service: str) -> str:
        """The service's database URL for asyncpg (no SQLAlchemy driver suffix)."""
        return self.database_urls[service].replace("postgresql+asyncpg://", "postgresql://", 1)


def _database_name(service: str) -> str:
    # Named by the bench's process: two runs on one server never drop each other's data.
    return f"lkern_bench_{os.getpid()}_{service}"


async def _recreate_databases(admin_url: str) -> dict[str, str]:
    connection = await asyncpg.connect(admin_url)
    urls = {}
    try:
        for name in DATABASES:
            database = _database_name(name)
            await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await connection.execute(f'CREATE DATABASE "{database}"')
            base = admin_url.rsplit("/", 1)[0]
            urls[name] = f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{database}"
    finally:
        await connection.close()
    return urls


async def _drop_databases(admin_url: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        for name in DATABASES:
            await connection.execute(
                f'DROP DATABASE IF EXISTS "{_database_name(name)}" WITH (FORCE)'
            )
    finally:
        await connection.close()


def _common_env(stack: Stack) -> dict[str, str]:
    identity_port = stack.services["identity"].base_url.rsplit(":", 1)[1]
    return {
        "LKERN_ENV": "production",
        "LKERN_LOG_LEVEL": "info",
        "LKERN_BROKER_URL": stack.broker.url,
        "LKERN_KAFKA_IDEMPOTENCE": "false",  # tansu has no InitProducerId
        "LKERN_SERVICE_SECRET": SERVICE_SECRET,
        "LKERN_SIGNING_KEY": TEST_KEY_PEM,
        "LKERN_IDENTITY_URL": f"http://127.0.0.1:{identity_port}",
        "LKERN_ADMIN_EMAIL": ADMIN_EMAIL,
        "LKERN_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "LKERN_RATE_LIMIT_REQUESTS": "1000000000",
        "LKERN_ANONYMOUS_RATE_LIMIT_REQUESTS": "1000000000",
        "LKERN_DATA_DIR": str(stack.work_dir),
        "LKERN_DB_POOL_SIZE": str(stack.pool_size),
        "LKERN_DB_MAX_OVERFLOW": str(stack.pool_size),
    }


def _serve(
    stack: Stack,
    name: str,
    extra: dict[str, str],
    port: int | None = None,
    grpc_port: int | None = None,
    *,
    workers: int = 1,
) -> Served:
    """``lkern serve NAME``; with more than one worker, kept as ``NAME-workers``."""
    port, grpc_port = port or free_port(), grpc_port or free_port()
    env = {
        **_common_env(stack),
        "LKERN_DATABASE_URL": stack.database_urls[name],
        f"LKERN_{name.upper()}_PORT": str(port),
        f"LKERN_{name.upper()}_GRPC_PORT": str(grpc_port),
        **extra,
    }
    key = name if workers == 1 else f"{name}-workers"
    args = ["serve", name, *(["--workers", str(workers)] if workers > 1 else [])]
    process = LkernProcess(args, env=env, log_path=stack.work_dir / f"{key}.log")
    process.start()
    served = Served(key, f"http://127.0.0.1:{port}", grpc_port, process)
    stack.services[key] = served
    return served


def restart(stack: Stack, name: str, extra: dict[str, str]) -> None:
    """Serve ``name`` again on its ports, with ``extra`` in its environment (and only
    that beyond what every service gets)."""
    served = stack.services[name]
    _stop(served)
    port = int(served.base_url.rsplit(":", 1)[1])
    again = _serve(stack, name, extra, port, served.grpc_port)
    # The same object, so the stack's clean-up stops the new process.
    served.process = again.process
    stack.services[name] = served
    _wait_healthy(served)


def _start_floor(
    stack: Stack,
    name: str,
    module: str,
    database: str = "contacts",
    extra: dict[str, str] | None = None,
) -> Served:
    port = free_port()
    log = (stack.work_dir / f"{name}.log").open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"bench.floor.{module}:app",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env={
            "FLOOR_DATABASE_URL": stack.plain_url(database),
            "LKERN_DB_POOL_SIZE": str(stack.pool_size),
            "IDENTITY_URL": stack.services["identity"].base_url,
            "PATH": "/usr/bin:/bin",
            **(extra or {}),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    served = Served(name, f"http://127.0.0.1:{port}", None, process)
    stack.floors[name] = served
    return served


def _start_grpc_floor(stack: Stack) -> Served:
    """W5's floor (bench/floor/grpc_contacts.py) on contacts' database."""
    port = free_port()
    log = (stack.work_dir / "grpc-floor.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.floor.grpc_contacts", str(port)],
        env={
            "FLOOR_DATABASE_URL": stack.plain_url("contacts"),
            "LKERN_DB_POOL_SIZE": str(stack.pool_size),
            "PATH": "/usr/bin:/bin",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    served = Served("grpc-floor", "", port, process)
    stack.floors["grpc-floor"] = served
    return served


def _wait_healthy(served: Served, timeout: float = 60) -> None:
    if not served.base_url:  # gRPC only: listening is enough
        _wait_listening(served, timeout)
        return
    if isinstance(served.process, LkernProcess):
        served.process.wait_healthy(served.base_url, timeout)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{served.base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(f"{served.name} did not become healthy")


def _wait_listening(served: Served, timeout: float) -> None:
    assert served.grpc_port is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", served.grpc_port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{served.name} did not listen")


def _stop(served: Served) -> None:
    process = served.process
    if isinstance(process, LkernProcess):
        if process.process is not None:
            process.stop()
    elif process is not None and process.poll() is None:
        process.terminate()
        process.wait(15)


def _start_issues(stack: Stack, cleanup: ExitStack) -> list[Served]:
    """moto, ``lkern serve issues`` with the peers it asks, and issues' floor."""
    s3 = MotoServer(stack.work_dir / "moto.log")
    s3.start()
    cleanup.callback(s3.stop)
    stack.s3 = s3
    issues = _serve(
        stack,
        "issues",
        {
            **CREDENTIALS,
            "LKERN_ISSUES_STORAGE_URL": s3.url(BUCKET),
            "LKERN_IDENTITY_GRPC_TARGET": f"127.0.0.1:{stack.services['identity'].grpc_port}",
            "LKERN_CONTACTS_GRPC_TARGET": f"127.0.0.1:{stack.services['contacts'].grpc_port}",
        },
    )
    cleanup.callback(_stop, issues)
    floor = _start_floor(
        stack,
        "issues-floor",
        "issues",
        "issues",
        {**CREDENTIALS, "FLOOR_S3_ENDPOINT": s3.endpoint, "FLOOR_S3_BUCKET": BUCKET},
    )
    cleanup.callback(_stop, floor)
    return [issues, floor]


def _start_inventory(stack: Stack, cleanup: ExitStack) -> list[Served]:
    """``lkern serve inventory`` and inventory's floor."""
    inventory = _serve(stack, "inventory", {})
    cleanup.callback(_stop, inventory)
    floor = _start_floor(stack, "inventory-floor", "inventory", "inventory")
    cleanup.callback(_stop, floor)
    return [inventory, floor]


@contextmanager
def running_stack(
    work_dir: Path,
    *,
    pool_size: int = 10,
    issues: bool = False,
    inventory: bool = False,
    workers: int = 1,
) -> Iterator[Stack]:
    """Start everything (issues and S3 only with ``issues``, inventory only with
    ``inventory``; with ``workers`` over 1, contacts a second time on its own ports,
    served by that many workers); stop it all on the way out, whatever happened."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as cleanup:
        admin_url = cleanup.enter_context(postgres_server())
        urls = run_sync(_recreate_databases(admin_url))
        cleanup.callback(lambda: run_sync(_drop_databases(admin_url)))
        broker = TansuBroker(work_dir / "tansu.log")
        broker.start()
        cleanup.callback(broker.stop)
        stack = Stack(work_dir, admin_url, urls, broker, pool_size=pool_size, workers=workers)
        identity_port = free_port()
        stack.services["identity"] = Served("identity", f"http://127.0.0.1:{identity_port}")
        _serve(stack, "identity", {}, identity_port)
        cleanup.callback(_stop, stack.services["identity"])
        _wait_healthy(stack.services["identity"])
        contacts = _serve(stack, "contacts", {})
        cleanup.callback(_stop, contacts)
        # Issues starts alongside contacts: it only names contacts' address.
        waiting = _start_issues(stack, cleanup) if issues else []
        waiting += _start_inventory(stack, cleanup) if inventory else []
        _wait_healthy(contacts)
        orders = _serve(
            stack, "orders", {"LKERN_CONTACTS_GRPC_TARGET": f"127.0.0.1:{contacts.grpc_port}"}
        )
        cleanup.callback(_stop, orders)
        if workers > 1:
            # After contacts is up: the schema is there, so neither migrates at once.
            waiting.append(_serve(stack, "contacts", {}, workers=workers))
            cleanup.callback(_stop, waiting[-1])
        for name, module in (("floor", "app"), ("layers", "layers")):
            cleanup.callback(_stop, _start_floor(stack, name, module))
        cleanup.callback(_stop, _start_grpc_floor(stack))
        _wait_healthy(orders)
        for served in [*stack.floors.values(), *waiting]:
            _wait_healthy(served)
        yield stack
