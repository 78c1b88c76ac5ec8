"""The relay never stalls on one message (§5): a refused message blocks its aggregate only."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import select

from lkern.events.contacts import ContactUpdated
from lkern.platform.events.memory import MemoryBroker, memory_broker
from lkern.platform.events.outbox import OutboxMessage
from lkern.services import SERVICES
from tests.events.conftest import running
from tests.events.helpers import collect, contact_created, eventually

TOPICS = ["lkern.contacts.created", "lkern.contacts.updated"]
#: Over Kafka's default 1 MiB per message, which the producer and the memory broker enforce.
TOO_BIG = 1_100_000


async def _rows(runtime) -> list[OutboxMessage]:
    async with runtime.unit_of_work() as uow:
        return list(
            (await uow.session.scalars(select(OutboxMessage).order_by(OutboxMessage.seq))).all()
        )


async def test_a_refused_message_blocks_only_its_own_aggregate(contacts_app):
    runtime = contacts_app.runtime
    big, others = uuid.uuid4(), [uuid.uuid4() for _ in range(3)]
    later = ContactUpdated(**{**contact_created(big).model_dump(), "version": 2})
    async with runtime.unit_of_work() as uow:
        # The refused message sits in the middle of one batch, with a later event of its own.
        uow.emit(contact_created(others[0]), others[0])
        uow.emit(contact_created(big, name="x" * TOO_BIG), big)
        uow.emit(contact_created(others[1]), others[1])
        uow.emit(later, big)
        uow.emit(contact_created(others[2]), others[2])
        await uow.commit()

    async def others_published() -> bool:
        rows = await _rows(runtime)
        return all(row.published_at is not None for row in rows if row.key != str(big))

    await eventually(others_published, timeout=10)
    await asyncio.sleep(3)  # the refused message is tried again meanwhile, more than once
    blocked = [row for row in await _rows(runtime) if row.key == str(big)]
    assert [row.published_at for row in blocked] == [None, None]
    assert blocked[0].attempts >= 2 and "larger than" in (blocked[0].last_error or "")
    assert blocked[1].attempts == 0, "a later event of the blocked aggregate waits its turn"

    # After the partial failure, a new event still goes out within milliseconds.
    fresh = uuid.uuid4()
    started = asyncio.get_running_loop().time()
    async with runtime.unit_of_work() as uow:
        uow.emit(contact_created(fresh), fresh)
        await uow.commit()

    async def fresh_published() -> bool:
        rows = await _rows(runtime)
        return all(row.published_at is not None for row in rows if row.key == str(fresh))

    await eventually(fresh_published, timeout=10, interval=0.005)
    elapsed = asyncio.get_running_loop().time() - started
    assert elapsed < 0.5, f"{elapsed:.3f}s"

    seen = await collect(runtime.broker, TOPICS, 5, timeout=5)
    keys = sorted(str(s.message.key) for s in seen)
    assert keys == sorted(str(key) for key in [*others, fresh]), "each published exactly once"


async def test_topics_are_created_when_the_broker_was_down_at_start(
    event_databases, broker_settings, tmp_path, request
):
    """Down at start, and it would not create topics by itself (memory) or would create
    them its own way (tansu: four partitions): the relay creates them as configured."""
    url = broker_settings["broker_url"]
    tansu = request.getfixturevalue("tansu") if url.startswith("kafka") else None
    if tansu is not None:
        tansu.stop()
    else:
        broker = memory_broker(url)
        broker.auto_create_topics = False
        broker.available = False
    settings = {**broker_settings, "kafka_partitions": 2}
    async with running(
        SERVICES["contacts"], event_databases["contacts"], tmp_path, **settings
    ) as app:
        if tansu is not None:
            tansu.start()
        else:
            broker.available = True
        async with app.client() as client:
            response = await client.post(
                "/api/v1/contacts", json={"name": "A", "email": "a@example.com"}
            )
            assert response.status_code == 201

        async def published() -> bool:
            return all(row.published_at is not None for row in await _rows(app.runtime))

        await eventually(published, timeout=30)
        if tansu is None:
            assert isinstance(app.runtime.broker, MemoryBroker)
            assert len(app.runtime.broker.topics["lkern.contacts.created"]) == 1
        else:
            admin = AIOKafkaAdminClient(bootstrap_servers=tansu.bootstrap)
            await admin.start()
            try:
                [topic] = await admin.describe_topics(["lkern.contacts.created"])
            finally:
                await admin.close()
            assert len(topic["partitions"]) == 2, topic
