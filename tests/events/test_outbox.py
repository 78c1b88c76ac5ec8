"""The transactional outbox and its relay (§5), on SQLite and PostgreSQL, memory and Kafka."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from lkern.events.contacts import ContactCreated
from lkern.platform.events.envelope import CONTENT_TYPE
from lkern.platform.events.memory import MemoryBroker
from lkern.platform.events.outbox import OutboxMessage
from lkern.platform.events.relay import OutboxRelay, RelayOptions
from tests.conftest import new_database_url
from tests.events.conftest import count
from tests.events.helpers import collect, contact_created, eventually

CONTACT_TOPICS = [
    "lkern.contacts.created",
    "lkern.contacts.updated",
    "lkern.contacts.deleted",
    "lkern.contacts.restored",
    "lkern.contacts.permanently_deleted",
]


async def outbox_topics(runtime) -> list[str]:
    async with runtime.unit_of_work() as uow:
        return list(
            (
                await uow.session.scalars(select(OutboxMessage.topic).order_by(OutboxMessage.seq))
            ).all()
        )


class TestWrittenWithTheChange:
    @pytest.fixture
    def broker_settings(self):
        # These tests read the outbox table; the relay must not race them.
        return {"broker_url": f"memory://{uuid.uuid4().hex}", "outbox_poll_seconds": 3600}

    async def test_every_lifecycle_step_writes_its_event(self, contacts_app):
        contacts_app.runtime.relay.wake = lambda: None  # keep rows unpublished for inspection
        async with contacts_app.client() as client:
            contact = (
                await client.post("/api/v1/contacts", json={"name": "A", "email": "a@example.com"})
            ).json()
            url = f"/api/v1/contacts/{contact['id']}"
            await client.patch(url, json={"name": "B"})
            await client.patch(url, json={"name": "B"})  # no change, no event
            await client.post(f"{url}/deactivate")
            await client.delete(url)
            await client.post(f"{url}/restore")
            await client.delete(f"{url}/permanent")
        assert await outbox_topics(contacts_app.runtime) == [
            "lkern.contacts.created",
            "lkern.contacts.updated",
            "lkern.contacts.updated",
            "lkern.contacts.deleted",
            "lkern.contacts.restored",
            "lkern.contacts.permanently_deleted",
        ]

    async def test_a_replacement_writes_the_updated_event(self, contacts_app):
        contacts_app.runtime.relay.wake = lambda: None
        async with contacts_app.client() as client:
            body = {"name": "A", "email": "a@example.com"}
            contact = (await client.post("/api/v1/contacts", json=body)).json()
            url = f"/api/v1/contacts/{contact['id']}"
            await client.put(url, json={**body, "notes": "new"})
            await client.put(url, json={**body, "notes": "new"})  # no change, no event
        assert await outbox_topics(contacts_app.runtime) == [
            "lkern.contacts.created",
            "lkern.contacts.updated",
        ]

    async def test_rejected_change_leaves_no_event(self, contacts_app):
        contacts_app.runtime.relay.wake = lambda: None
        async with contacts_app.client() as client:
            await client.post("/api/v1/contacts", json={"name": "A", "email": "a@example.com"})
            duplicate = await client.post(
                "/api/v1/contacts", json={"name": "B", "email": "a@example.com"}
            )
            assert duplicate.status_code == 409
        assert await outbox_topics(contacts_app.runtime) == ["lkern.contacts.created"]

    async def test_rolled_back_unit_of_work_leaves_no_event(self, contacts_app):
        runtime = contacts_app.runtime
        with pytest.raises(RuntimeError, match="boom"):
            async with runtime.unit_of_work() as uow:
                uow.emit(contact_created(uuid.uuid4()), uuid.uuid4())
                await uow.session.flush()
                raise RuntimeError("boom")
        assert await count(runtime, OutboxMessage) == 0

    @pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
    async def test_event_data_that_does_not_validate_is_never_written(self, contacts_app):
        runtime = contacts_app.runtime
        broken = ContactCreated.model_construct(
            **{**contact_created(uuid.uuid4()).model_dump(), "version": "many"}
        )
        with pytest.raises(ValidationError):
            async with runtime.unit_of_work() as uow:
                uow.emit(broken, uuid.uuid4())
                await uow.commit()
        assert await count(runtime, OutboxMessage) == 0

    async def test_a_service_cannot_emit_another_services_events(self, ledger_app):
        with pytest.raises(ValueError, match="cannot emit"):
            async with ledger_app.runtime.unit_of_work() as uow:
                uow.emit(contact_created(uuid.uuid4()), uuid.uuid4())
                await uow.commit()


class TestPublished:
    async def test_cloudevent_envelope_key_and_header(self, contacts_app):
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        async with contacts_app.client() as client:
            response = await client.post(
                "/api/v1/contacts",
                json={"name": "Ada", "email": "ada@example.com"},
                headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
            )
        contact = response.json()
        [seen] = await collect(contacts_app.runtime.broker, ["lkern.contacts.created"], 1)
        event = seen.event
        assert seen.message.key == contact["id"]
        assert seen.message.headers["content-type"] == CONTENT_TYPE
        assert event["specversion"] == "1.0"
        assert uuid.UUID(event["id"]).version == 7
        assert event["source"] == "/lkern/contacts"
        assert event["type"] == "lkern.contacts.created"
        assert event["subject"] == contact["id"]
        assert event["datacontenttype"] == "application/json"
        assert event["time"]
        assert event["traceparent"].split("-")[1] == trace_id
        assert event["dataschema"] == "urn:lkern:events:lkern.contacts.created:v1"
        assert event["data"]["email"] == "ada@example.com" and event["data"]["version"] == 1
        await eventually(lambda: _all_published(contacts_app.runtime))

    async def test_order_per_contact_is_commit_order(self, contacts_app):
        async with contacts_app.client() as client:
            ids = []
            for n in range(5):
                created = await client.post(
                    "/api/v1/contacts", json={"name": f"C{n}", "email": f"c{n}@example.com"}
                )
                ids.append(created.json()["id"])
            for round_ in range(6):
                for contact_id in ids:
                    await client.patch(
                        f"/api/v1/contacts/{contact_id}", json={"notes": f"round {round_}"}
                    )
        seen = await collect(contacts_app.runtime.broker, CONTACT_TOPICS, 35)
        assert len(seen) == 35
        # Each event type is its own topic and Kafka orders only within a
        # partition, so on the broker the order to check is per topic and key...
        for contact_id in ids:
            updates = [
                s.event["data"]["version"]
                for s in seen
                if s.message.key == contact_id and s.message.topic == "lkern.contacts.updated"
            ]
            assert updates == list(range(2, 8)), updates
        # ...while the relay's own order is per aggregate across all topics:
        # each event was acknowledged before the next of its contact was sent.
        await eventually(lambda: _all_published(contacts_app.runtime))
        async with contacts_app.runtime.unit_of_work() as uow:
            rows = (
                await uow.session.scalars(select(OutboxMessage).order_by(OutboxMessage.seq))
            ).all()
        for contact_id in ids:
            published = [row.published_at for row in rows if row.key == contact_id]
            assert None not in published and published == sorted(published)
            assert len(set(published)) == len(published)

    async def test_commit_wakes_the_relay_without_waiting_for_the_poll(
        self, event_databases, broker_settings, tmp_path
    ):
        from lkern.services import SERVICES
        from tests.events.conftest import running

        settings = {**broker_settings, "outbox_poll_seconds": 60}
        async with running(
            SERVICES["contacts"], event_databases["contacts"], tmp_path, **settings
        ) as app:
            await asyncio.sleep(0.5)  # the relay is now asleep on its 60 s poll
            started = asyncio.get_running_loop().time()
            async with app.client() as client:
                await client.post("/api/v1/contacts", json={"name": "A", "email": "a@example.com"})
            await eventually(lambda: _all_published(app.runtime), timeout=10, interval=0.01)
            assert asyncio.get_running_loop().time() - started < 5


async def _all_published(runtime) -> bool:
    return await count(runtime, OutboxMessage, OutboxMessage.published_at.is_(None)) == 0


class TestRelay:
    """Relays driven by the test: the app's own relay is stopped first."""

    @pytest.fixture
    def broker_settings(self):
        return {"broker_url": f"memory://{uuid.uuid4().hex}", "outbox_poll_seconds": 3600}

    @pytest.fixture(autouse=True)
    async def _app_relay_stopped(self, contacts_app):
        await contacts_app.runtime.workers.stop(5)

    async def _fill(self, runtime, contacts: int, per_contact: int) -> list[uuid.UUID]:
        ids = [uuid.uuid4() for _ in range(contacts)]
        for version in range(1, per_contact + 1):
            async with runtime.unit_of_work() as uow:
                for contact_id in ids:
                    event = contact_created(contact_id).model_copy(update={"version": version})
                    uow.emit(event, contact_id)
                await uow.commit()
        return ids

    async def test_two_relays_racing_publish_every_event_once_in_order(self, contacts_app, backend):
        """2,000 rows, two relays with their own engines on one database, each with two
        batches out at once."""
        runtime = contacts_app.runtime
        await self._fill(runtime, contacts=400, per_contact=5)
        broker = MemoryBroker()
        options = RelayOptions(
            batch_size=50, poll_seconds=0.05, lease_seconds=30, in_flight_batches=2
        )
        from lkern.platform.db import create_engine

        engines = [create_engine(runtime.settings, "contacts") for _ in range(2)]
        relays = [OutboxRelay(engine, broker, options=options) for engine in engines]
        stopping = asyncio.Event()
        tasks = [asyncio.create_task(relay.run(stopping)) for relay in relays]
        try:
            await eventually(lambda: _all_published(runtime), timeout=60)
        finally:
            stopping.set()
            await asyncio.gather(*tasks)
            for engine in engines:
                await engine.dispose()
        messages = broker.topics["lkern.contacts.created"]
        event_ids = [m.value for m in messages]
        assert len(messages) == 2000
        assert len(set(event_ids)) == 2000, "an event was published twice"
        import json

        by_contact: dict[str, list[int]] = {}
        for message in messages:
            by_contact.setdefault(message.key or "", []).append(
                json.loads(message.value)["data"]["version"]
            )
        assert all(versions == [1, 2, 3, 4, 5] for versions in by_contact.values())

    async def test_broker_outage_keeps_rows_until_it_returns(self, contacts_app):
        runtime = contacts_app.runtime
        broker = runtime.broker
        assert isinstance(broker, MemoryBroker)
        broker.available = False
        await self._fill(runtime, contacts=10, per_contact=1)
        assert await runtime.relay.relay_once() == (0, 10)
        backlog, _ = await runtime.relay.backlog()
        assert backlog == 10
        broker.available = True
        assert await runtime.relay.relay_once() == (10, 10)
        assert await runtime.relay.backlog() == (0, 0.0)

    async def test_published_rows_are_pruned_after_retention(self, contacts_app):
        runtime = contacts_app.runtime
        await self._fill(runtime, contacts=3, per_contact=1)
        await runtime.relay.relay_once()
        assert await runtime.relay.prune() == 0  # younger than the retention
        relay = OutboxRelay(
            runtime.engine, runtime.broker, options=RelayOptions(retention_seconds=0.001)
        )
        await asyncio.sleep(0.01)
        assert await relay.prune() == 3


async def test_notify_wakes_a_relay_in_another_replica(contacts_app, backend):
    """PostgreSQL only: a commit in one replica wakes the relay of another at once."""
    if backend != "postgres":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite has one process")
    runtime = contacts_app.runtime
    await runtime.workers.stop(5)  # the committing replica's own relay is gone
    from lkern.platform.db import create_engine

    engine = create_engine(runtime.settings, "contacts")
    broker = MemoryBroker()
    other = OutboxRelay(engine, broker, options=RelayOptions(poll_seconds=60))
    stopping = asyncio.Event()
    task = asyncio.create_task(other.run(stopping))
    try:
        await asyncio.sleep(0.5)  # listening, and asleep on its 60 s poll
        started = asyncio.get_running_loop().time()
        async with runtime.unit_of_work() as uow:
            uow.emit(contact_created(uuid.uuid4()), uuid.uuid4())
            await uow.commit()

        async def arrived() -> bool:
            return len(broker.topics["lkern.contacts.created"]) == 1

        await eventually(arrived, timeout=10, interval=0.01)
        assert asyncio.get_running_loop().time() - started < 2
    finally:
        stopping.set()
        await task
        await engine.dispose()


async def test_a_claim_stays_fast_when_the_outbox_fills_up_after_an_idle_start(
    request, backend, tmp_path
):
    """PostgreSQL only: the claim's plan is made for the outbox as it is. Prepared,
    the claim ran on a generic plan from the first few claims on a nearly empty
    outbox, which looped over every pending row for each one: 10 s a claim at
    4,000 pending (seen in W4), so a relay behind fell further behind."""
    if backend != "postgres":
        pytest.skip("a PostgreSQL plan cache")
    from sqlalchemy import insert
    from sqlalchemy.ext.asyncio import create_async_engine

    from lkern.platform.db import utcnow

    engine = create_async_engine(new_database_url(request, backend, tmp_path))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(OutboxMessage.metadata.create_all)
        relay = OutboxRelay(engine, MemoryBroker())

        def rows(count: int) -> list[dict[str, object]]:
            return [
                {
                    "event_id": uuid.uuid4(),
                    "topic": "lkern.contacts.created",
                    "key": str(uuid.uuid4()),
                    "payload": "{}",
                    "created_at": utcnow(),
                }
                for _ in range(count)
            ]

        for _ in range(8):  # more than PostgreSQL's five custom plans before a generic one
            async with engine.begin() as connection:
                await connection.execute(insert(OutboxMessage), rows(1))
            assert await relay.relay_once() == (1, 1)
        async with engine.begin() as connection:
            await connection.execute(insert(OutboxMessage), rows(4000))
        started = asyncio.get_running_loop().time()
        assert await relay.relay_once() == (200, 200)
        assert asyncio.get_running_loop().time() - started < 2
    finally:
        await engine.dispose()
