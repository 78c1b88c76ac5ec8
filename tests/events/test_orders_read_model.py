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
