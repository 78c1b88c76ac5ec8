"""Shared fixtures: backends, per-backend databases and running service apps.

Every API test runs once on SQLite and once on PostgreSQL. PostgreSQL tests
skip when no server can be had, except under ``CI=true``, where that fails.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete

from lkern.platform.app import create_app
from lkern.platform.logging import configure_logging
from lkern.platform.runtime import ServiceRuntime
from lkern.platform.service import ServiceDefinition
from lkern.platform.settings import Environment, Settings
from lkern.services import SERVICES
from tests.support.postgres import (
    PostgresUnavailable,
    create_database,
    drop_database,
    postgres_server,
    run_sync,
)
from tests.support.s3 import CREDENTIALS, MotoServer, S3Unavailable
from tests.support.tokens import bearer, trust_test_key

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
BACKENDS = ["sqlite", "postgres"]


def pytest_configure(config: pytest.Config) -> None:
    configure_logging(default_level="warning")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests (whole systems served, the browser, the generator, the bench)
    are handed out first: started last, one of them would keep a worker busy long
    after the other ran out of tests. The sort is stable, so each module's tests
    keep their order (and their module fixtures)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    try:
        with postgres_server() as url:
            yield url
    except PostgresUnavailable as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is mandatory in CI: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")


def new_database_url(request: pytest.FixtureRequest, backend: str, tmp: Path) -> str:
    """A fresh, empty database of the given backend, dropped at the end of the session."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / 'db.sqlite'}"
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    url = run_sync(create_database(admin_url))
    request.addfinalizer(lambda: run_sync(drop_database(admin_url, url)))
    return url


def settings_for(
    definition: ServiceDefinition, data_dir: Path, database_url: str, **overrides: Any
) -> Settings:
    """Settings of one service under test, of its settings class; each gets its own
    in-memory broker unless told."""
    overrides.setdefault("broker_url", f"memory://{uuid.uuid4().hex}")
    overrides.setdefault("grpc_port", 0)  # any free port: several apps run at once
    # Tests send thousands of requests as one user; test_rate_limits sets its own limits.
    overrides.setdefault("rate_limit_requests", 1_000_000)
    overrides.setdefault("anonymous_rate_limit_requests", 1_000_000)
    overrides.setdefault("outbox_poll_seconds", 0.2)
    overrides.setdefault("consumer_retry_base_seconds", 0.05)
    # Tests read the gauges right after changing what they count.
    overrides.setdefault("metrics_refresh_seconds", 0)
    return definition.settings_class(
        env=Environment.TEST, data_dir=data_dir, database_url=database_url, **overrides
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server for the session, started here and stopped afterwards."""
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        server.start()
    except S3Unavailable as exc:
        if IN_CI:
            pytest.fail(f"the S3 server is mandatory in CI: {exc}")
        pytest.skip(f"S3 server unavailable: {exc}")
    saved = {name: os.environ.get(name) for name in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        yield server
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class ServiceUnderTest:
    def __init__(self, definition: ServiceDefinition, app: FastAPI) -> None:
        self.definition = definition
        self.app = app
        trust_test_key(app.state.runtime)

    @property
    def runtime(self) -> ServiceRuntime:
        return self.app.state.runtime

    def client(self, role: str | None = "admin") -> httpx.AsyncClient:
        """A client sending a token of ``role`` (an admin's by default; None: no token)."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, raise_app_exceptions=False),
            base_url="http://testserver",
            headers=bearer(role) if role else None,
        )

    async def wipe(self) -> None:
        """Empty every table, children first, keeping the migrated schema."""
        async with self.runtime.engine.begin() as connection:
            for metadata in reversed(self.definition.all_metadata):
                for table in reversed(metadata.sorted_tables):
                    await connection.execute(delete(table))


ADMIN_EMAIL = "root@example.com"
ADMIN_PASSWORD = "correct horse battery staple"
#: Given to every service whose settings have the field (identity's bootstrap admin).
TEST_SETTINGS: dict[str, Any] = {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD}


def peer_targets(
    definition: ServiceDefinition, running: Mapping[str, ServiceRuntime]
) -> dict[str, str]:
    """The settings pointing a service at the gRPC servers of its running peers (a peer
    not among them keeps its default target: orders without inventory, for lines that
    name no part)."""
    targets = {}
    for peer in definition.peers:
        if peer.name not in running:
            continue
        server = running[peer.name].grpc_server
        assert server is not None, f"{peer.name} serves no gRPC"
        targets[peer.target_setting] = f"127.0.0.1:{server.port}"
    return targets


class Fleet:
    """The registered services on one backend, each started on first use (its peers
    first) on its own database, all on one in-memory broker; stopped at the end."""

    def __init__(
        self,
        request: pytest.FixtureRequest,
        backend: str,
        tmp_path_factory: pytest.TempPathFactory,
        stack: AsyncExitStack,
    ) -> None:
        self._request = request
        self._backend = backend
        self._tmp = tmp_path_factory
        self._stack = stack
        self._broker_url = f"memory://{uuid.uuid4().hex}"
        self._running: dict[str, ServiceUnderTest] = {}

    async def start(self, name: str) -> ServiceUnderTest:
        if name not in self._running:
            tmp = self._tmp.mktemp(f"{name}-{self._backend}")
            url = new_database_url(self._request, self._backend, tmp)
            definition = SERVICES[name]
            app = create_app(definition, await self.settings(name, tmp, url))
            await self._serve(app)
            self._running[name] = ServiceUnderTest(definition, app)
        return self._running[name]

    async def settings(self, name: str, data_dir: Path, url: str, **overrides: Any) -> Settings:
        """Settings of another instance of ``name`` among this fleet (a second replica, a
        variant on other storage): its peers are the fleet's, started if need be."""
        definition = SERVICES[name]
        peers = {peer.name: (await self.start(peer.name)).runtime for peer in definition.peers}
        fields = definition.settings_class.model_fields
        values: dict[str, Any] = {
            "broker_url": self._broker_url,
            **peer_targets(definition, peers),
            **{key: value for key, value in TEST_SETTINGS.items() if key in fields},
            **overrides,
        }
        return settings_for(definition, data_dir, url, **values)

    async def _serve(self, app: FastAPI) -> None:
        """Run the app's lifespan in a task of its own: started and stopped in one
        context, whichever fixture or test asked for the service first."""
        started, stopping = asyncio.Event(), asyncio.Event()

        async def serve() -> None:
            async with app.router.lifespan_context(app):
                started.set()
                await stopping.wait()

        task = asyncio.create_task(serve())
        waiting = asyncio.create_task(started.wait())
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if not started.is_set():
            waiting.cancel()
            await task  # raises what the start raised

        async def stop() -> None:
            stopping.set()
            await task

        self._stack.push_async_callback(stop)


@pytest.fixture(scope="session")
async def fleet(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Fleet]:
    if backend == "postgres":
        request.getfixturevalue("postgres_admin_url")  # skips (or fails in CI) up front
    async with AsyncExitStack() as stack:
        yield Fleet(request, backend, tmp_path_factory, stack)


@pytest.fixture(scope="session")
async def contacts_service(fleet: Fleet) -> ServiceUnderTest:
    return await fleet.start("contacts")


@pytest.fixture
async def contacts(contacts_service: ServiceUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a clean contacts service (on each backend in turn)."""
    await contacts_service.wipe()
    async with contacts_service.client() as client:
        yield client


@pytest.fixture(scope="session")
async def orders_service(fleet: Fleet) -> ServiceUnderTest:
    """Orders on its own database, calling the contacts and inventory services under
    test over gRPC and reading contacts' events from the same broker."""
    return await fleet.start("orders")


@pytest.fixture
async def orders(
    orders_service: ServiceUnderTest,
    contacts: httpx.AsyncClient,
    inventory_service: ServiceUnderTest,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a clean orders service; ``contacts`` is cleaned too, and inventory
    holds just the part the orders tests' lines name (``BZQM``)."""
    await orders_service.wipe()
    await inventory_service.wipe()
    await seed_part(inventory_service, ORDERED_PART)
    async with orders_service.client() as client:
        yield client


@pytest.fixture(scope="session")
async def identity_service(fleet: Fleet) -> ServiceUnderTest:
    return await fleet.start("identity")


@pytest.fixture
async def identity(identity_service: ServiceUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    """A client of identity with only its bootstrap admin."""
    from sqlalchemy import delete as sql_delete

    from lkern.identity.models import RefreshToken, User

    async with identity_service.runtime.engine.begin() as connection:
        await connection.execute(sql_delete(RefreshToken))
        await connection.execute(sql_delete(User).where(User.email != ADMIN_EMAIL))
    async with identity_service.client(role=None) as client:
        yield client


@pytest.fixture
def service_app(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Callable[..., Any]:
    """``async with service_app(service, **settings) as app``: a service of its own on this
    backend's database, with these settings."""
    made = 0

    @asynccontextmanager
    async def running(service: str = "contacts", **settings: Any) -> AsyncIterator[FastAPI]:
        nonlocal made
        made += 1
        tmp = tmp_path / f"{service}-{made}"
        tmp.mkdir()
        url = new_database_url(request, backend, tmp)
        definition = SERVICES[service]
        app = create_app(definition, settings_for(definition, tmp, url, **settings))
        trust_test_key(app.state.runtime)
        async with app.router.lifespan_context(app):
            yield app

    return running


def client_of(app: FastAPI, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://t",
        headers=headers,
    )


@pytest.fixture(scope="session")
async def issues_service(fleet: Fleet) -> ServiceUnderTest:
    """Issues on its own database and local files, asking the identity and contacts
    services under test over gRPC."""
    return await fleet.start("issues")


@pytest.fixture
async def issues(
    issues_service: ServiceUnderTest, contacts: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a clean issues service; ``contacts`` is cleaned too."""
    await issues_service.wipe()
    async with issues_service.client() as client:
        yield client


ORDERED_PART = "BZQM"


async def seed_part(inventory: ServiceUnderTest, code: str, **fields: Any) -> None:
    """A part with a chosen id, written as the service writes one (ids are generated)."""
    from lkern.inventory.service import insert_part

    async with inventory.runtime.unit_of_work() as uow:
        await insert_part(uow, code, {"description": f"part {code}", **fields})
        await uow.commit()


@pytest.fixture(scope="session")
async def inventory_service(fleet: Fleet) -> ServiceUnderTest:
    """Inventory on its own database and local files."""
    return await fleet.start("inventory")


@pytest.fixture
async def inventory(inventory_service: ServiceUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a clean inventory service."""
    await inventory_service.wipe()
    async with inventory_service.client() as client:
        yield client
