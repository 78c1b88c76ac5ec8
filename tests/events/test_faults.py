"""Fault tests of §5: what arrives when the broker or the relay fails."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import select

from lkern.platform.events.broker import Broker, OutgoingMessage
from lkern.platform.events.memory import MemoryBroker
from lkern.platform.events.outbox import OutboxMessage
from lkern.platform.events.relay import OutboxRelay, RelayOptions
from lkern.platform.workers import BackgroundWorkers
from tests.events.conftest import ledger_entries
from tests.events.helpers import collect, eventually


async def _all_published(runtime) -> bool:
    backlog, _ = await runtime.relay.backlog()
    return backlog == 0


async def create_many(client, count: int, prefix: str) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 25):
        responses = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/contacts",
                    json={"name": f"{prefix} {n}", "email": f"{prefix.lower()}{n}@example.com"},
                )
                for n in range(start, min(start + 25, count))
            )
        )
        assert [r.status_code for r in responses] == [201] * len(responses), [
            r.text for r in responses if r.status_code != 201
        ][:3]
        ids.extend(r.json()["id"] for r in responses)
    return ids


@pytest.mark.slow
async def test_broker_outage_during_1000_creates(contacts_app, broker_settings, request):
    """Every create answers 201 while the broker is down; all events arrive afterwards."""
    runtime = contacts_app.runtime
    tansu = (
        request.getfixturevalue("tansu")
        if broker_settings["broker_url"].startswith("kafka")
        else None
    )
    broker = runtime.broker
    if tansu is not None:
        tansu.stop()
    else:
        assert isinstance(broker, MemoryBroker)
        broker.available = False

    async with contacts_app.client() as client:
        ids = await create_many(client, 1000, "Outage")
        for contact_id in ids[:100]:
            response = await client.patch(f"/api/v1/contacts/{contact_id}", json={"notes": "later"})
            assert response.status_code == 200
    backlog, _ = await runtime.relay.backlog()
    assert backlog == 1100, "nothing can have been published during the outage"

    if tansu is not None:
        tansu.start()
    else:
        broker.available = True
    await eventually(lambda: _all_published(runtime), timeout=120, interval=0.2)

    created = await collect(broker, ["lkern.contacts.created"], 1000, timeout=60)
    updated = await collect(broker, ["lkern.contacts.updated"], 100, timeout=60)
    assert sorted(str(s.message.key) for s in created) == sorted(ids)
    assert sorted(str(s.message.key) for s in updated) == sorted(ids[:100])
    assert len({s.event["id"] for s in created}) == 1000
    # In order per contact: each contact's update was published after its creation.
    async with runtime.unit_of_work() as uow:
        rows = (await uow.session.scalars(select(OutboxMessage).order_by(OutboxMessage.seq))).all()
    first_seen: dict[str, tuple[str, Any]] = {}
    for row in rows:
        if row.key in first_seen:
            assert first_seen[row.key][0] == "lkern.contacts.created"
            assert row.topic == "lkern.contacts.updated"
            assert row.published_at > first_seen[row.key][1]
        else:
            first_seen[row.key] = (row.topic, row.published_at)


class DiesMidBatch(Broker):
    """Passes half of the first batch to the real broker, then hangs until killed."""

    def __init__(self, real: Broker) -> None:
        self.real = real
        self.half_sent = asyncio.Event()

    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[BaseException | None]:
        half = len(messages) // 2
        await self.real.publish(messages[:half])
        self.half_sent.set()
        await asyncio.Event().wait()  # never returns: the relay dies here
        raise AssertionError("unreachable")

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def ensure_topics(self, topics: Sequence[str]) -> None: ...
    def subscribe(self, group, topics):
        raise NotImplementedError

    async def ping(self) -> None: ...


@pytest.mark.slow
async def test_relay_killed_mid_batch_loses_nothing_and_consumer_applies_once(
    contacts_app, ledger_app
):
    runtime = contacts_app.runtime
    await runtime.workers.stop(5)  # this test drives the relays itself
    async with contacts_app.client() as client:
        ids = await create_many(client, 300, "Crash")

    dying = DiesMidBatch(runtime.broker)
    doomed = OutboxRelay(
        runtime.engine,
        dying,
        options=RelayOptions(batch_size=300, lease_seconds=1),
        relay_id="doomed",
    )
    stopping = asyncio.Event()
    task = asyncio.create_task(doomed.run(stopping))
    await asyncio.wait_for(dying.half_sent.wait(), 30)
    task.cancel()  # killed: 150 events are on the broker, none marked published
    with pytest.raises(asyncio.CancelledError):
        await task
    backlog, _ = await runtime.relay.backlog()
    assert backlog == 300

    successor = OutboxRelay(runtime.engine, runtime.broker, options=RelayOptions(poll_seconds=0.2))
    restarted = asyncio.Event()
    successor_task = asyncio.create_task(successor.run(restarted))
    try:
        await eventually(lambda: _all_published(runtime), timeout=60)
    finally:
        restarted.set()
        await successor_task

    async def all_applied() -> bool:
        return len(await ledger_entries(ledger_app)) >= 300

    await eventually(all_applied, timeout=60)
    await asyncio.sleep(1)  # let the duplicates reach the consumer too
    entries = await ledger_entries(ledger_app)
    assert sorted(e.contact_id for e in entries) == sorted(ids), "each event applied exactly once"
    delivered = await collect(runtime.broker, ["lkern.contacts.created"], 450, timeout=30)
    assert len(delivered) == 450, "the first half went out twice: at least once, as promised"
    assert {json.loads(s.message.value)["subject"] for s in delivered} == set(ids)


@pytest.mark.slow
async def test_a_relay_stopped_mid_batch_hands_its_rows_back(contacts_app):
    """The shutdown's grace ran out while the broker hung: the batch in hand is
    unclaimed as the relay is cancelled, not leased to nobody for the lease's 30 s,
    so the next relay (a restarted replica) publishes it at once."""
    runtime = contacts_app.runtime
    await runtime.workers.stop(5)  # this test drives the relays itself
    async with contacts_app.client() as client:
        await create_many(client, 20, "Stopped")

    hanging = DiesMidBatch(runtime.broker)
    workers = BackgroundWorkers()
    workers.start("outbox-relay", OutboxRelay(runtime.engine, hanging, relay_id="stopped").run)
    await asyncio.wait_for(hanging.half_sent.wait(), 30)
    await workers.stop(0.1)  # the grace period is over: cancelled mid-publish

    async with runtime.unit_of_work() as uow:
        rows = (await uow.session.scalars(select(OutboxMessage))).all()
    assert [(row.published_at, row.claimed_by, row.claimed_until) for row in rows] == [
        (None, None, None)
    ] * 20
    successor = OutboxRelay(runtime.engine, runtime.broker)
    assert await successor.relay_once() == (20, 20)
