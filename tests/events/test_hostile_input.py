"""Nothing a producer sends stops a consumer (§5): bad messages are parked, the rest goes on.

The bad messages are sent as raw bytes, by a plain Kafka client on Kafka and
by the memory broker's ``produce_raw``: no envelope or check of ours between.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from sqlalchemy import text

from lkern.platform.events.envelope import build_event
from tests.events.conftest import ledger_entries
from tests.events.helpers import contact_created, eventually, produce_raw
from tests.events.ledger import BEHAVIOUR
from tests.events.test_consumer import _metric, create_contact, dead_letters

TOPIC = "lkern.contacts.created"


def _event(name: str, **changes: Any) -> dict[str, Any]:
    data = contact_created(uuid.uuid4(), name)
    event = json.loads(build_event("contacts", data, data.id).encode())
    event.update(changes)
    return dict(event)


def _bytes(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def _hostile() -> list[tuple[str, bytes | None, bytes | None, str]]:
    """(case, key, value, what the dead letter's error must say)."""
    schema_breaking = _event("Schema")
    schema_breaking["data"]["id"] = "not a uuid"
    escaped_nul = _event("A\u0000B")
    return [
        ("key not UTF-8", b"\xff\xfe", _bytes(_event("Key")), "key is not UTF-8"),
        ("value not UTF-8", b"k", b"\xff\xfe{}", "not UTF-8"),
        ("no value", b"k", None, "no value"),
        ("not JSON", b"k", b"{not json", "not JSON"),
        ("not an object", b"k", b"[1, 2]", "not a CloudEvent"),
        ("non-UUID id", b"k", _bytes(_event("Id", id="not-a-uuid")), "id"),
        ("over-long id", b"k", _bytes(_event("Long", id="7" * 5000)), "id"),
        ("raw NUL byte", b"k", _bytes(_event("Raw")).replace(b"Raw", b"R\x00w"), "not JSON"),
        ("escaped NUL", b"k", _bytes(escaped_nul), "NUL"),
        ("data off its schema", b"k", _bytes(schema_breaking), "invalid data"),
        ("time without zone", b"k", _bytes(_event("Naive", time="2026-01-01T00:00:00")), "time"),
        ("nested too deep", b"k", b"[" * 100_000, "nested too deeply"),
    ]


async def test_whatever_a_producer_sends_is_parked_and_the_consumer_goes_on(
    contacts_app, ledger_app, caplog
):
    caplog.set_level(logging.WARNING)
    broker = contacts_app.runtime.broker
    cases = _hostile()
    for _, key, value, _ in cases:
        await produce_raw(broker, TOPIC, key, value)
    await create_contact(contacts_app, "After")

    async def all_parked_and_after_applied() -> bool:
        names = {e.name for e in await ledger_entries(ledger_app)}
        return "After" in names and len(await dead_letters(ledger_app)) >= len(cases)

    await eventually(all_parked_and_after_applied, timeout=30)
    letters = await dead_letters(ledger_app)
    assert len(letters) == len(cases)
    errors = [letter.error for letter in letters]
    for case, _, _, reason in cases:
        assert any(reason in error for error in errors), (case, reason, errors)
    assert all(letter.attempts == 1 for letter in letters), "a bad message is not worth a retry"
    assert {e.name for e in await ledger_entries(ledger_app)} == {"After"}
    crashes = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert not crashes, crashes[0].getMessage()


async def test_a_handlers_own_integrity_error_is_a_failure_not_a_duplicate(
    contacts_app, ledger_app
):
    BEHAVIOUR.clashing_names.add("Clash")
    await create_contact(contacts_app, "Clash")
    await create_contact(contacts_app, "Fine")

    async def parked_and_moved_on() -> bool:
        names = {e.name for e in await ledger_entries(ledger_app)}
        return "Fine" in names and len(await dead_letters(ledger_app)) == 1

    await eventually(parked_and_moved_on, timeout=15)
    [letter] = await dead_letters(ledger_app)
    assert letter.attempts == 4 and "IntegrityError" in letter.error
    metrics = ledger_app.runtime.metrics.render().decode()
    duplicate = f'lkern_consumer_events_total{{outcome="duplicate",topic="{TOPIC}"}}'
    assert _metric(metrics, duplicate) == 0


async def test_a_dead_letter_that_cannot_be_written_waits_and_is_written_later(
    contacts_app, ledger_app, caplog
):
    """The dead-letter table is gone for a while: the consumer neither crashes nor skips
    the message; it backs off, leaves the offset where it was, and parks it later."""
    caplog.set_level(logging.WARNING)
    engine = ledger_app.runtime.engine
    async with engine.begin() as connection:
        await connection.execute(text("ALTER TABLE dead_letters RENAME TO dead_letters_away"))
    try:
        await produce_raw(contacts_app.runtime.broker, TOPIC, b"k", b"{not json")
        await asyncio.sleep(3)  # the consumer tries to park it, more than once
    finally:
        async with engine.begin() as connection:
            await connection.execute(text("ALTER TABLE dead_letters_away RENAME TO dead_letters"))
    await create_contact(contacts_app, "After")

    async def parked_and_moved_on() -> bool:
        names = {e.name for e in await ledger_entries(ledger_app)}
        return "After" in names and len(await dead_letters(ledger_app)) == 1

    await eventually(parked_and_moved_on, timeout=30)
    crashes = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert not crashes, crashes[0].getMessage()
    assert any("cannot park" in r.getMessage() for r in caplog.records)
