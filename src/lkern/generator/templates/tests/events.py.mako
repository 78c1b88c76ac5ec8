"""${whose} events (§5): written with each change, published in their envelope with the
data their registered schema describes, on memory and Kafka."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from lkern.events import lookup
from lkern.services import SERVICES
from tests.events.conftest import Running, running
from tests.events.helpers import collect
from tests.events.test_outbox import outbox_topics

BASE = "/api/v1/${name}"
% if files:
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
% endif


@pytest.fixture
async def ${name}_app(event_databases, broker_settings, tmp_path) -> AsyncIterator[Running]:
    async with running(
        SERVICES["${name}"], event_databases["${name}"], tmp_path / "${name}", **broker_settings
    ) as service:
        yield service


class TestWrittenWithTheChange:
    @pytest.fixture
    def broker_settings(self):
        # These tests read the outbox table; the relay must not race them.
        return {"broker_url": f"memory://{uuid.uuid4().hex}", "outbox_poll_seconds": 3600}

    async def test_every_lifecycle_step_writes_its_event(self, ${name}_app):
        ${name}_app.runtime.relay.wake = lambda: None  # keep rows unpublished for inspection
        async with ${name}_app.client() as client:
            ${noun} = (await client.post(BASE, json={"name": "A"})).json()
            url = f"{BASE}/{${noun}['id']}"
            await client.patch(url, json={"name": "B"})
            await client.patch(url, json={"name": "B"})  # no change, no event
% if files:
            attachment = (
                await client.post(
                    f"{url}/attachments", files={"file": ("plan.png", PNG, "image/png")}
                )
            ).json()
            await client.delete(f"{url}/attachments/{attachment['file_id']}")
% endif
            await client.delete(url)
            await client.post(f"{url}/restore")
            await client.delete(f"{url}/permanent")
        assert await outbox_topics(${name}_app.runtime) == [
            "lkern.${name}.created",
            "lkern.${name}.updated",
% if files:
            "lkern.${name}.attachment_added",
            "lkern.${name}.attachment_removed",
% endif
            "lkern.${name}.deleted",
            "lkern.${name}.restored",
            "lkern.${name}.permanently_deleted",
        ]

    async def test_rejected_change_leaves_no_event(self, ${name}_app):
        ${name}_app.runtime.relay.wake = lambda: None
        async with ${name}_app.client() as client:
            ${noun} = (await client.post(BASE, json={"name": "A"})).json()
            url = f"{BASE}/{${noun}['id']}"
            stale = await client.patch(url, json={"name": "B"}, headers={"If-Match": '"9"'})
            assert stale.status_code == 412
        assert await outbox_topics(${name}_app.runtime) == ["lkern.${name}.created"]


async def test_published_events_carry_their_registered_schema(${name}_app):
    async with ${name}_app.client() as client:
        ${noun} = (await client.post(BASE, json={"name": "A"})).json()
        await client.delete(f"{BASE}/{${noun}['id']}")
    topics = ["lkern.${name}.created", "lkern.${name}.deleted"]
    seen = await collect(${name}_app.runtime.broker, topics, 2)
    assert sorted(message.event["type"] for message in seen) == topics
    for message in seen:
        event = message.event
        assert message.message.key == ${noun}["id"] and event["subject"] == ${noun}["id"]
        assert event["source"] == "/lkern/${name}"
        registered = lookup(event["type"])
        assert event["dataschema"] == registered.dataschema()
        registered.model_validate(event["data"])  # raises unless the data fits the schema
        assert event["data"]["id"] == ${noun}["id"]
