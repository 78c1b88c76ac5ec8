"""Event tests run on both brokers: in memory, and a real Kafka-protocol broker (tansu)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, func, select

from lkern.platform.app import create_app
from lkern.platform.db import PlatformBase
from lkern.platform.migrations import upgrade
from lkern.platform.runtime import ServiceRuntime
from lkern.platform.service import ServiceDefinition
from lkern.services import SERVICES
from tests.conftest import IN_CI, new_database_url, peer_targets, settings_for
from tests.events.ledger import BEHAVIOUR, LEDGER, LedgerEntry
from tests.support.tansu import TansuBroker, TansuUnavailable
from tests.support.tokens import bearer, trust_test_key

BROKERS = ["memory", pytest.param("kafka", marks=pytest.mark.xdist_group("kafka"))]

# Short Kafka timings: groups should settle in about a second rather than the
# default ten. (Tansu lacks the idempotent producer; the relay finds that out.)
KAFKA_SETTINGS: dict[str, Any] = {
    "kafka_session_timeout_ms": 1000,
    "kafka_heartbeat_interval_ms": 300,
    "kafka_rebalance_timeout_ms": 1000,
    "kafka_request_timeout_ms": 3000,
}


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[TansuBroker]:
    """A fresh broker per test: no topic or group state leaks between tests."""
    broker = TansuBroker(tmp_path / "tansu.log")
    try:
        broker.start()
    except TansuUnavailable as exc:
        if IN_CI:
            pytest.fail(f"the Kafka-protocol broker is mandatory in CI: {exc}")
        pytest.skip(f"tansu unavailable: {exc}")
    yield broker
    broker.stop()


@pytest.fixture(params=BROKERS)
def broker_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "memory":
        return {"broker_url": f"memory://{uuid.uuid4().hex}"}
    tansu: TansuBroker = request.getfixturevalue("tansu")
    return {"broker_url": tansu.url, **KAFKA_SETTINGS}


@pytest.fixture(scope="session")
def event_databases(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """A database per registered service and one for the ledger, per backend, shared by
    the tests."""
    tmp = tmp_path_factory.mktemp(f"events-{backend}")
    return {
        name: new_database_url(request, backend, tmp / name) for name in [*SERVICES, LEDGER.name]
    }


@dataclass
class Running:
    app: FastAPI

    @property
    def runtime(self) -> ServiceRuntime:
        runtime: ServiceRuntime = self.app.state.runtime
        return runtime

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, raise_app_exceptions=False),
            base_url="http://testserver",
            headers=bearer("admin"),
        )


async def _wipe(runtime: ServiceRuntime) -> None:
    async with runtime.engine.begin() as connection:
        for metadata in reversed(runtime.definition.all_metadata):
            for table in reversed(metadata.sorted_tables):
                await connection.execute(delete(table))


@asynccontextmanager
async def running(
    definition: ServiceDefinition, url: str, tmp: Path, **settings: Any
) -> AsyncIterator[Running]:
    """A service's app with its relay and consumer running, on a wiped database."""
    service_settings = settings_for(definition, tmp, url, **settings)
    app = create_app(definition, service_settings, migrate=False)
    runtime: ServiceRuntime = app.state.runtime
    trust_test_key(runtime)
    if definition.name in SERVICES:
        await asyncio.to_thread(upgrade, definition, service_settings)
    else:
        async with runtime.engine.begin() as connection:
            for metadata in definition.all_metadata:
                await connection.run_sync(metadata.create_all)
    await _wipe(runtime)
    async with app.router.lifespan_context(app):
        yield Running(app)


@pytest.fixture
async def contacts_app(event_databases, broker_settings, tmp_path) -> AsyncIterator[Running]:
    async with running(
        SERVICES["contacts"], event_databases["contacts"], tmp_path / "contacts", **broker_settings
    ) as service:
        yield service


@pytest.fixture
async def ledger_app(event_databases, broker_settings, tmp_path) -> AsyncIterator[Running]:
    BEHAVIOUR.failing_names.clear()
    BEHAVIOUR.clashing_names.clear()
    BEHAVIOUR.calls.clear()
    async with running(
        LEDGER, event_databases["ledger"], tmp_path / "ledger", **broker_settings
    ) as service:
        yield service


async def ledger_entries(ledger: Running) -> list[LedgerEntry]:
    async with ledger.runtime.unit_of_work() as uow:
        return list((await uow.session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))).all())


async def count(runtime: ServiceRuntime, model: type[PlatformBase], *where: Any) -> int:
    async with runtime.unit_of_work() as uow:
        return int(
            await uow.session.scalar(select(func.count()).select_from(model).where(*where)) or 0
        )


@pytest.fixture
async def orders_app(
    event_databases, broker_settings, contacts_app, tmp_path
) -> AsyncIterator[Running]:
    """Orders on the same broker as ``contacts_app``, validating contacts over its gRPC."""
    orders = SERVICES["orders"]
    async with running(
        orders,
        event_databases["orders"],
        tmp_path / "orders",
        **peer_targets(orders, {"contacts": contacts_app.runtime}),
        **broker_settings,
    ) as service:
        yield service
