"""Idempotence is found out, not configured (§5): tansu lacks InitProducerId."""

from __future__ import annotations

import logging

import pytest

from lkern.platform.events.kafka import KafkaBroker
from lkern.services import SERVICES
from tests.events.conftest import KAFKA_SETTINGS, running
from tests.events.helpers import collect

pytestmark = pytest.mark.xdist_group("kafka")


async def _publish_three(event_databases, tmp_path, **settings) -> KafkaBroker:
    """Create three contacts and read their events back from the broker."""
    async with running(
        SERVICES["contacts"], event_databases["contacts"], tmp_path, **settings
    ) as app:
        async with app.client() as client:
            for n in range(3):
                response = await client.post(
                    "/api/v1/contacts", json={"name": f"I{n}", "email": f"i{n}@example.com"}
                )
                assert response.status_code == 201
        seen = await collect(app.runtime.broker, ["lkern.contacts.created"], 3, timeout=15)
        assert len(seen) == 3
        broker = app.runtime.broker
        assert isinstance(broker, KafkaBroker)
        return broker


async def test_default_settings_publish_to_a_broker_without_idempotence(
    event_databases, tansu, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    assert "kafka_idempotence" not in KAFKA_SETTINGS
    broker = await _publish_three(event_databases, tmp_path, broker_url=tansu.url, **KAFKA_SETTINGS)
    assert broker.idempotent is False
    ours = [r for r in caplog.records if r.name.startswith("lkern")]
    warned = [r for r in ours if "InitProducerId" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING, warned
    assert "idempotent" in warned[0].getMessage()
    assert not [r for r in caplog.records if "cannot reach" in r.getMessage()]


async def test_an_explicit_no_is_honoured_without_asking(event_databases, tansu, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    settings = {**KAFKA_SETTINGS, "kafka_idempotence": False}
    broker = await _publish_three(event_databases, tmp_path, broker_url=tansu.url, **settings)
    assert broker.idempotent is False
    assert not [r for r in caplog.records if "InitProducerId" in r.getMessage()]
