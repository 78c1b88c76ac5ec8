"""Service-wide conventions: identity, health, readiness, log level, docs, problems."""

from __future__ import annotations

import logging
import re
import uuid

import asyncpg
import httpx
import pytest
from sqlalchemy import bindparam, select

from lkern.contacts.models import Contact
from lkern.contacts.service import CONTACT
from lkern.platform import db
from lkern.platform.app import create_app
from lkern.platform.errors import NotFound
from lkern.services import SERVICES
from tests.api.test_contacts import assert_problem
from tests.conftest import new_database_url, settings_for
from tests.support.tokens import bearer, trust_test_key


async def test_root(contacts: httpx.AsyncClient):
    assert (await contacts.get("/")).json() == {
        "service": "contacts",
        "version": "0.1.0",
        "docs": "/docs",
    }


async def test_liveness(contacts: httpx.AsyncClient):
    body = (await contacts.get("/health")).json()
    assert body == {"status": "healthy", "service": "contacts", "version": "0.1.0"}


async def test_readiness_ok(contacts: httpx.AsyncClient):
    response = await contacts.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


async def test_readiness_names_the_broker_when_it_is_down(contacts, contacts_service):
    broker = contacts_service.runtime.broker
    broker.available = False
    try:
        response = await contacts.get("/health/ready")
    finally:
        broker.available = True
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "failed: BrokerUnavailable"}


async def test_docs_and_openapi(contacts: httpx.AsyncClient):
    for page in ("/docs", "/redoc"):
        response = await contacts.get(page)
        assert response.status_code == 200
        # Everything the page loads is the service's own (tests/system/test_docs_offline.py
        # renders them in a browser cut off from the outside).
        assert "http" not in response.text
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assets = re.findall(r'(?:src|href)="(/docs/assets/[^"]+\.js)"', response.text)
        assert assets, page
        for asset in assets:
            assert (await contacts.get(asset)).status_code == 200, asset
    schema = (await contacts.get("/openapi.json")).json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method} {path} has no summary"
            assert operation.get("responses"), f"{method} {path} documents no responses"


async def test_trace_id_is_taken_from_traceparent(contacts: httpx.AsyncClient):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = await contacts.get(
        "/api/v1/contacts/00000000-0000-7000-8000-000000000000",
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    assert response.json()["trace_id"] == trace_id
    assert response.headers["traceparent"].split("-")[1] == trace_id


class TestLogLevel:
    async def test_get_put_and_persist(self, contacts: httpx.AsyncClient, contacts_service):
        body = (await contacts.get("/config/log-level")).json()
        assert set(body["valid_levels"]) == {"debug", "info", "warning", "error", "critical"}
        try:
            response = await contacts.put("/config/log-level", json={"level": "DEBUG"})
            assert response.status_code == 200 and response.json()["level"] == "debug"
            assert (await contacts.get("/config/log-level")).json()["level"] == "debug"
            config = contacts_service.runtime.data_dir / "runtime_config.json"
            assert '"log_level": "debug"' in config.read_text()
        finally:
            # The level is the process's: later tests in this worker read
            # contacts' info lines (test_contacts_grpc's trace test).
            await contacts.put("/config/log-level", json={"level": body["level"]})

    @pytest.mark.parametrize("body", [{"level": "loud"}, {"level": 10}, {}, {"level": None}])
    async def test_invalid_level_is_422_and_changes_nothing(
        self, contacts: httpx.AsyncClient, body
    ):
        before = (await contacts.get("/config/log-level")).json()["level"]
        assert_problem(await contacts.put("/config/log-level", json=body), 422, "VALIDATION_FAILED")
        assert (await contacts.get("/config/log-level")).json()["level"] == before


async def test_database_outage_is_503_not_500(tmp_path, caplog):
    """Nothing listens on port 9: readiness names the database, requests get 503."""
    url = "postgresql+asyncpg://postgres@127.0.0.1:9/none"
    app = create_app(
        SERVICES["contacts"],
        settings_for(SERVICES["contacts"], tmp_path, url, db_connect_timeout=1),
        migrate=False,
    )
    trust_test_key(app.state.runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    caplog.set_level(logging.WARNING)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t", headers=bearer()) as client,
    ):
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("failed")
        assert ready.headers["retry-after"]
        problem = assert_problem(await client.get("/api/v1/contacts"), 503, "DATABASE_UNAVAILABLE")
        assert "127.0.0.1" not in problem["detail"]
        # A single-item read takes the read lane below the ORM; it fails the same way.
        one = await client.get(f"/api/v1/contacts/{uuid.uuid4()}")
        assert_problem(one, 503, "DATABASE_UNAVAILABLE")
        assert one.headers["retry-after"]
        response = await client.post(
            "/api/v1/contacts", json={"name": "A", "email": "a@example.com"}
        )
        assert_problem(response, 503, "DATABASE_UNAVAILABLE")
        assert response.headers["retry-after"]
        assert (await client.get("/health")).status_code == 200


@pytest.mark.postgres
async def test_idle_connections_cut_by_the_server_are_replaced_unnoticed(
    request, tmp_path, monkeypatch
):
    """No ping per request, but a connection idle for a while is checked before use."""
    monkeypatch.setattr(db, "IDLE_BEFORE_PING_SECONDS", 0.0)
    url = new_database_url(request, "postgresql", tmp_path)
    app = create_app(SERVICES["contacts"], settings_for(SERVICES["contacts"], tmp_path, url))
    trust_test_key(app.state.runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t", headers=bearer()) as client,
    ):
        assert (await client.get("/api/v1/contacts")).status_code == 200
        created = await client.post(
            "/api/v1/contacts", json={"name": "Ada", "email": "ada@example.com"}
        )
        one = f"/api/v1/contacts/{created.json()['id']}"
        assert (await client.get(one)).status_code == 200
        # A server restart or a proxy's idle timeout: every pooled connection dies.
        admin = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            ended = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        assert ended >= 1
        for _ in range(3):
            assert (await client.get("/api/v1/contacts")).status_code == 200
            # The read lane's own pool: a read that finds its connection dead runs again.
            assert (await client.get(one)).status_code == 200


async def test_a_read_only_unit_of_work_reads_outside_a_transaction(contacts_service, backend):
    async def in_transaction(uow) -> bool:
        await uow.session.execute(select(1))
        raw = await (await uow.session.connection()).get_raw_connection()
        if backend == "postgres":
            return bool(raw.driver_connection.is_in_transaction())
        return bool(raw.driver_connection.in_transaction)

    uow = contacts_service.runtime.unit_of_work()
    async with uow.read_only():
        outside = not await in_transaction(uow)
        with pytest.raises(RuntimeError):
            await uow.commit()
    # PostgreSQL runs the read without BEGIN; SQLite keeps its transaction.
    assert outside is (backend == "postgres")
    # Leaving the block makes it an ordinary unit of work again.
    async with uow:
        assert await in_transaction(uow)
        await uow.commit()


async def test_reads_below_the_orm_only_in_a_read_only_unit_of_work(contacts_service):
    """A read on its own connection would not see a read-write transaction's changes."""
    stmt = select(Contact).where(Contact.id == bindparam("item_id"))
    uow = contacts_service.runtime.unit_of_work()
    with pytest.raises(RuntimeError, match="read_only"):
        await uow.fetch_one(stmt, item_id=uuid.uuid4())
    async with uow:
        with pytest.raises(RuntimeError, match="read_only"):
            await uow.fetch_one(stmt, item_id=uuid.uuid4())
    async with uow.read_only():
        assert await uow.fetch_one(stmt, item_id=uuid.uuid4()) is None


async def test_a_row_read_below_the_orm_equals_the_orm_s(contacts_service, contacts):
    """Same values, same types (UUIDs, UTC-aware datetimes), on both backends."""
    created = await contacts.post(
        "/api/v1/contacts",
        json={"name": "Ada", "email": "ada@example.com", "phone": "+421905123456"},
    )
    contact_id = uuid.UUID(created.json()["id"])
    uow = contacts_service.runtime.unit_of_work()
    async with uow:
        through_orm = await CONTACT.load_attached(uow, contact_id)
    async with uow.read_only():
        below_orm = await CONTACT.read_detached(uow, contact_id)
    columns = [column.key for column in Contact.__table__.columns]
    assert {c: getattr(below_orm, c) for c in columns} == {
        c: getattr(through_orm, c) for c in columns
    }
    assert below_orm.created_at.tzinfo is not None
    assert isinstance(below_orm.id, uuid.UUID)
    async with uow.read_only():
        with pytest.raises(NotFound):
            await CONTACT.read_detached(uow, uuid.uuid4())
