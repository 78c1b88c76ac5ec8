"""Orders' contacts_view, fed by contacts' events over each broker (§11 orders)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from lkern.orders.models import ContactView
from lkern.platform.events.broker import OutgoingMessage
from lkern.platform.events.inbox import ProcessedEvent
from tests.events.conftest import count
from tests.events.helpers import collect, eventually

CONTACT_TOPICS = [
    "lkern.contacts.created",
    "lkern.contacts.updated",
    "lkern.contacts.deleted",
    "lkern.contacts.restored",
]


async def test_rename_reaches_the_order_list_without_calling_contacts(contacts_app, orders_app):
    async with contacts_app.client() as contacts, orders_app.client() as orders:
        contact = (
            await contacts.post("/api/v1/contacts", json={"name": "Old", "email": "o@example.com"})
        ).json()
        created = await orders.post("/api/v1/orders", json={"contact_id": contact["id"]})
        assert created.status_code == 201, created.text
        await contacts.patch(f"/api/v1/contacts/{contact['id']}", json={"name": "New"})

        async def renamed() -> bool:
            items = (await orders.get("/api/v1/orders")).json()["items"]
            return items[0]["customer_name"] == "New"

        await eventually(renamed)
        # Contacts' gRPC goes away: listing still shows the name, so it never asked.
        assert contacts_app.runtime.grpc_server is not None
        await contacts_app.runtime.grpc_server.stop(0)
        listed = (await orders.get("/api/v1/orders", params={"search": "new"})).json()
        assert [item["customer_name"] for item in listed["items"]] == ["New"]


async def test_replayed_and_late_events_change_nothing(contacts_app, orders_app):
    async with contacts_app.client() as contacts:
        contact = (
            await contacts.post("/api/v1/contacts", json={"name": "A", "email": "a@example.com"})
        ).json()
        url = f"/api/v1/contacts/{contact['id']}"
        await contacts.patch(url, json={"name": "B"})
        await contacts.post(f"{url}/deactivate")

    async def synced() -> bool:
        # "created" has its own topic and may come last: wait for all three.
        async with orders_app.runtime.unit_of_work() as uow:
            view = await uow.session.get(ContactView, uuid.UUID(contact["id"]))
        applied = await count(orders_app.runtime, ProcessedEvent)
        return view is not None and view.version == 3 and applied == 3

    await eventually(synced)
    applied = await count(orders_app.runtime, ProcessedEvent)
    assert applied == 3

    # The broker hands every event over again, oldest last (a late, stale "created").
    seen = await collect(contacts_app.runtime.broker, CONTACT_TOPICS, 3)
    again = [
        OutgoingMessage(s.message.topic, s.message.key or "", s.message.value, s.message.headers)
        for s in seen
    ]
    assert await contacts_app.runtime.broker.publish(list(reversed(again))) == [None, None, None]

    async def all_seen_again() -> bool:
        text = orders_app.runtime.metrics.render().decode()
        duplicates = [
            line
            for line in text.splitlines()
            if line.startswith('lkern_consumer_events_total{outcome="duplicate"')
        ]
        return sum(float(line.rsplit(" ", 1)[1]) for line in duplicates) >= 3

    await eventually(all_seen_again)
    assert await count(orders_app.runtime, ProcessedEvent) == applied
    async with orders_app.runtime.unit_of_work() as uow:
        [view] = (await uow.session.scalars(select(ContactView))).all()
    assert (view.name, view.is_active, view.version) == ("B", False, 3)


async def test_an_older_version_arriving_late_is_ignored(orders_app):
    import uuid

    from lkern.events.contacts import ContactCreated, ContactUpdated
    from lkern.orders.handlers import handlers
    from lkern.platform.db import utcnow
    from lkern.platform.events.envelope import build_event
    from lkern.platform.events.inbox import apply_event

    contact_id = uuid.uuid4()
    fields = {
        "id": contact_id,
        "email": "x@example.com",
        "phone": None,
        "company": None,
        "is_active": True,
        "updated_at": utcnow(),
        "deleted_at": None,
    }
    newer = build_event("contacts", ContactUpdated(**fields, name="Newer", version=2), contact_id)
    older = build_event("contacts", ContactCreated(**fields, name="Older", version=1), contact_id)
    runtime = orders_app.runtime
    for envelope in (newer, older):
        await apply_event(runtime.unit_of_work(), handlers, "orders", envelope)
    async with runtime.unit_of_work() as uow:
        view = await uow.session.get(ContactView, contact_id)
    assert view is not None and (view.name, view.version) == ("Newer", 2)


def _contact_event(event_class, contact_id, version, name="C"):
    from lkern.platform.events.envelope import build_event
    from tests.events.helpers import contact_created

    fields = contact_created(contact_id, name).model_dump() | {"version": version}
    return build_event("contacts", event_class(**fields), contact_id)


async def test_a_batch_applies_each_event_once_below_the_orm(orders_app):
    """Orders' handlers take no session: the inbox applies their batch below the ORM,
    and an event twice in a batch, or recorded before, is a duplicate."""
    from lkern.events.contacts import ContactCreated, ContactPermanentlyDeleted, ContactUpdated
    from lkern.orders.handlers import PURGED_VERSION, handlers
    from lkern.platform.events.envelope import build_event
    from lkern.platform.events.inbox import Outcome, apply_events

    assert not handlers.need_session(handlers.topics)
    runtime = orders_app.runtime
    kept, purged = uuid.uuid4(), uuid.uuid4()
    created = _contact_event(ContactCreated, kept, 1, "First")
    renamed = _contact_event(ContactUpdated, kept, 2, "Second")
    # A purge of a contact orders never heard of leaves a purged view behind.
    gone = build_event(
        "contacts", ContactPermanentlyDeleted(id=purged, audit_id=uuid.uuid4()), purged
    )
    first = await apply_events(runtime.unit_of_work(), handlers, "orders", [created, created, gone])
    assert first == [Outcome.PROCESSED, Outcome.DUPLICATE, Outcome.PROCESSED]
    again = await apply_events(runtime.unit_of_work(), handlers, "orders", [gone, renamed])
    assert again == [Outcome.DUPLICATE, Outcome.PROCESSED]
    assert await count(runtime, ProcessedEvent) == 3
    late = _contact_event(ContactUpdated, purged, 7, "Back")
    await apply_events(runtime.unit_of_work(), handlers, "orders", [late])
    async with runtime.unit_of_work() as uow:
        views = {view.contact_id: view for view in await uow.session.scalars(select(ContactView))}
    assert (views[kept].name, views[kept].version) == ("Second", 2)
    assert (views[purged].deleted, views[purged].is_active) == (True, False)
    assert views[purged].version == PURGED_VERSION


async def test_two_consumers_racing_for_one_event_apply_it_once(orders_app, backend):
    """The second insert of the id waits for the first transaction and, as that one
    committed, skips the event: a duplicate, not an error and not a second effect."""
    import asyncio

    import pytest

    from lkern.events.contacts import ContactCreated
    from lkern.orders.handlers import handlers as orders_handlers
    from lkern.platform.events.handlers import EventHandlers
    from lkern.platform.events.inbox import Outcome, apply_event

    if backend != "postgres":
        pytest.skip("SQLite takes one writer at a time: there is no race to lose")
    gate, inside = asyncio.Event(), asyncio.Event()
    calls = []

    async def slow(uow, event):
        calls.append(event.id)
        inside.set()
        await gate.wait()

    handlers = EventHandlers.joined(orders_handlers, EventHandlers())
    assert handlers is not None
    handlers.on(ContactCreated)(slow)
    runtime = orders_app.runtime
    envelope = _contact_event(ContactCreated, uuid.uuid4(), 1)
    first = asyncio.create_task(apply_event(runtime.unit_of_work(), handlers, "orders", envelope))
    await inside.wait()
    second = asyncio.create_task(apply_event(runtime.unit_of_work(), handlers, "orders", envelope))
    await asyncio.sleep(0.3)
    assert not second.done()  # waiting on the first one's row
    gate.set()
    assert await first == Outcome.PROCESSED
    assert await second == Outcome.DUPLICATE
    assert len(calls) == 1
    assert await count(runtime, ProcessedEvent) == 1
