"""Consumers (§5): inbox idempotency, retries with backoff, dead letters and replay."""

from __future__ import annotations

import itertools
import json

from sqlalchemy import select

from lkern.platform.events.broker import OutgoingMessage
from lkern.platform.events.consumer import RetryPolicy
from lkern.platform.events.dead_letters import DeadLetter
from lkern.platform.events.envelope import CONTENT_TYPE
from lkern.platform.events.inbox import ProcessedEvent
from tests.events.conftest import count, ledger_entries
from tests.events.helpers import collect, eventually
from tests.events.ledger import BEHAVIOUR


async def create_contact(contacts_app, name: str) -> dict:
    async with contacts_app.client() as client:
        response = await client.post(
            "/api/v1/contacts", json={"name": name, "email": f"{name.lower()}@example.com"}
        )
    assert response.status_code == 201
    return dict(response.json())


async def dead_letters(ledger_app) -> list[DeadLetter]:
    async with ledger_app.runtime.unit_of_work() as uow:
        return list((await uow.session.scalars(select(DeadLetter))).all())


async def test_events_are_applied_by_the_consumer(contacts_app, ledger_app):
    contact = await create_contact(contacts_app, "Ada")
    async with contacts_app.client() as client:
        await client.patch(f"/api/v1/contacts/{contact['id']}", json={"name": "Ada L"})

    async def both_applied() -> bool:
        return len(await ledger_entries(ledger_app)) == 2

    await eventually(both_applied)
    entries = await ledger_entries(ledger_app)
    assert {(e.event_type, e.name) for e in entries} == {
        ("lkern.contacts.created", "Ada"),
        ("lkern.contacts.updated", "Ada L"),
    }
    assert await count(ledger_app.runtime, ProcessedEvent) == 2


async def test_a_redelivered_event_changes_nothing(contacts_app, ledger_app):
    await create_contact(contacts_app, "Once")
    [seen] = await collect(contacts_app.runtime.broker, ["lkern.contacts.created"], 1)

    async def applied() -> bool:
        return len(await ledger_entries(ledger_app)) == 1

    await eventually(applied)
    # The broker delivers the very same event twice more.
    message = seen.message
    again = OutgoingMessage(message.topic, message.key or "", message.value, message.headers)
    assert await contacts_app.runtime.broker.publish([again, again]) == [None, None]

    async def seen_three_times() -> bool:
        return sum(1 for name, _ in BEHAVIOUR.calls if name == "Once") >= 1 and (
            await _duplicates(ledger_app) >= 2
        )

    await eventually(seen_three_times)
    assert len(await ledger_entries(ledger_app)) == 1


async def _duplicates(ledger_app) -> float:
    text = ledger_app.runtime.metrics.render().decode()
    return _metric(
        text, 'lkern_consumer_events_total{outcome="duplicate",topic="lkern.contacts.created"}'
    )


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_failing_handler_is_retried_then_dead_lettered_then_replayed(
    contacts_app, ledger_app, monkeypatch
):
    chosen: list[float] = []
    original = RetryPolicy.delay

    def recorded(self: RetryPolicy, retry: int) -> float:
        chosen.append(original(self, retry))
        return chosen[-1]

    monkeypatch.setattr(RetryPolicy, "delay", recorded)
    BEHAVIOUR.failing_names.add("Poison")
    poison = await create_contact(contacts_app, "Poison")
    await create_contact(contacts_app, "Fine")

    async def parked_and_moved_on() -> bool:
        names = {e.name for e in await ledger_entries(ledger_app)}
        return "Fine" in names and len(await dead_letters(ledger_app)) == 1

    await eventually(parked_and_moved_on)
    # A failed batch left nothing behind: Fine was applied once, on its own.
    assert [e.name for e in await ledger_entries(ledger_app)].count("Fine") == 1

    # 1 attempt + 3 retries, each wait longer than the one before. When both
    # events came in one fetch, the batch's shared transaction tried Poison
    # once before that and failed as a whole; it does not count as an attempt.
    calls = [moment for name, moment in BEHAVIOUR.calls if name == "Poison"]
    assert len(calls) in (4, 5)
    attempts = calls[-4:]
    assert len(chosen) == 3 and chosen == sorted(chosen) and chosen[0] >= 0.05, chosen
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert all(gap >= delay for gap, delay in zip(gaps, chosen, strict=True)), (gaps, chosen)

    [letter] = await dead_letters(ledger_app)
    assert letter.attempts == 4
    assert letter.consumer_group == "ledger"
    assert letter.topic == "lkern.contacts.created"
    assert "ledger cannot take Poison" in letter.error
    assert letter.status == "pending"

    [dlq] = await collect(contacts_app.runtime.broker, ["lkern.contacts.created.dlq"], 1)
    parked = json.loads(dlq.message.value)
    assert parked["attempts"] == 4 and parked["consumer_group"] == "ledger"
    assert "ledger cannot take Poison" in parked["error"]
    assert parked["event"]["data"]["id"] == poison["id"]
    assert dlq.message.headers["lkern-consumer-group"] == "ledger"

    async with ledger_app.client() as client:
        listed = (await client.get("/api/v1/dlq", params={"status": "pending"})).json()
        assert [item["id"] for item in listed["items"]] == [str(letter.id)]
        assert listed["total"] == 1 and listed["total_exact"] is True

        BEHAVIOUR.failing_names.clear()  # the handler is fixed
        replayed = await client.post(f"/api/v1/dlq/{letter.id}/replay")
        assert replayed.status_code == 200
        assert replayed.json() == {"id": str(letter.id), "result": "processed"}
        again = await client.post(f"/api/v1/dlq/{letter.id}/replay")
        assert again.status_code == 404
        assert (await client.post("/api/v1/dlq/replay")).json() == []
        assert (await client.get("/api/v1/dlq", params={"status": "pending"})).json()["total"] == 0

    poisoned = [e for e in await ledger_entries(ledger_app) if e.name == "Poison"]
    assert len(poisoned) == 1

    metrics = ledger_app.runtime.metrics.render().decode()
    topic = 'topic="lkern.contacts.created"'
    assert _metric(metrics, f'lkern_consumer_events_total{{outcome="failed",{topic}}}') == 4
    assert _metric(metrics, f'lkern_consumer_events_total{{outcome="dead_lettered",{topic}}}') == 1
    assert _metric(metrics, f'lkern_consumer_events_total{{outcome="processed",{topic}}}') >= 1


async def test_malformed_message_is_dead_lettered_at_once(contacts_app, ledger_app):
    broker = contacts_app.runtime.broker
    garbage = OutgoingMessage(
        "lkern.contacts.created", "k", b"{not json", {"content-type": CONTENT_TYPE}
    )
    assert await broker.publish([garbage]) == [None]

    async def parked() -> bool:
        return len(await dead_letters(ledger_app)) == 1

    await eventually(parked)
    [letter] = await dead_letters(ledger_app)
    assert letter.attempts == 1 and letter.error.startswith("malformed event")
    # The consumer goes on with good events afterwards.
    await create_contact(contacts_app, "After")

    async def applied() -> bool:
        return any(e.name == "After" for e in await ledger_entries(ledger_app))

    await eventually(applied)
