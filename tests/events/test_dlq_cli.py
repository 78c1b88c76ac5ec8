"""``lkern dlq list|replay`` against a consuming service's database."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner

from lkern.cli import main
from lkern.services import SERVICES
from tests.events.conftest import ledger_entries
from tests.events.helpers import eventually
from tests.events.ledger import BEHAVIOUR, LEDGER
from tests.events.test_consumer import create_contact, dead_letters


@pytest.fixture
def broker_settings():
    import uuid

    return {"broker_url": f"memory://{uuid.uuid4().hex}"}


async def lkern(*args: str) -> tuple[int, str]:
    # The CLI runs its own event loop, so it runs in a thread here.
    result = await asyncio.to_thread(CliRunner().invoke, main, list(args))
    return result.exit_code, result.output


async def test_list_and_replay(contacts_app, ledger_app, event_databases, monkeypatch, tmp_path):
    monkeypatch.setitem(SERVICES, "ledger", LEDGER)
    monkeypatch.setenv("LKERN_LEDGER_DATABASE_URL", event_databases["ledger"])
    monkeypatch.setenv("LKERN_DATA_DIR", str(tmp_path))

    BEHAVIOUR.failing_names.add("Broken")
    await create_contact(contacts_app, "Broken")

    async def parked() -> bool:
        return len(await dead_letters(ledger_app)) == 1

    await eventually(parked)
    [letter] = await dead_letters(ledger_app)

    code, output = await lkern("dlq", "list", "ledger")
    assert code == 0, output
    assert "ledger: 1 dead letter(s)" in output
    assert (
        str(letter.id) in output and "lkern.contacts.created" in output and "attempts=4" in output
    )

    code, output = await lkern("dlq", "replay", "ledger")
    assert code == 2 and "--all" in output  # nothing named: refuse rather than guess

    BEHAVIOUR.failing_names.clear()
    code, output = await lkern("dlq", "replay", "ledger", "--all")
    assert code == 0, output
    assert f"{letter.id}: processed" in output
    assert [e.name for e in await ledger_entries(ledger_app)] == ["Broken"]

    code, output = await lkern("dlq", "list", "ledger")
    assert "ledger: 0 dead letter(s)" in output
    code, output = await lkern("dlq", "list", "ledger", "--status", "replayed")
    assert str(letter.id) in output

    # Every service consumes the platform's revocations of users but identity, which
    # publishes them.
    code, output = await lkern("dlq", "list", "identity")
    assert code == 2 and "consumes no events" in output
