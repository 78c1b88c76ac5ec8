"""Contacts and two orders replicas as separate processes on PostgreSQL and a real
Kafka-protocol broker: the whole story of issue 4, and codes across replicas."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import IN_CI, new_database_url
from tests.support.processes import free_port
from tests.support.tansu import TansuBroker, TansuUnavailable
from tests.support.tokens import bearer
from tests.system.conftest import ServedService, identity_env, serve, start

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("kafka")]

#: An admin of the cluster (identity signs with the tests' key).
API = httpx.Client(headers=bearer("admin"), timeout=30)


@pytest.fixture
def cluster(request, tmp_path: Path):
    broker = TansuBroker(tmp_path / "tansu.log")
    try:
        broker.start()
    except TansuUnavailable as exc:
        if IN_CI:
            pytest.fail(f"the Kafka-protocol broker is mandatory in CI: {exc}")
        pytest.skip(f"tansu unavailable: {exc}")
    contacts_grpc, identity_port = free_port(), free_port()
    common = {
        **identity_env(identity_port),
        "LKERN_BROKER_URL": broker.url,
        "LKERN_KAFKA_IDEMPOTENCE": "false",
        "LKERN_KAFKA_SESSION_TIMEOUT_MS": "1000",
        "LKERN_KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        "LKERN_KAFKA_REBALANCE_TIMEOUT_MS": "1000",
        "LKERN_CONTACTS_DATABASE_URL": new_database_url(request, "postgres", tmp_path / "c"),
        "LKERN_ORDERS_DATABASE_URL": new_database_url(request, "postgres", tmp_path / "o"),
        "LKERN_CONTACTS_GRPC_TARGET": f"127.0.0.1:{contacts_grpc}",
        "LKERN_OUTBOX_POLL_SECONDS": "0.5",
    }
    started: list[ServedService] = []
    try:
        started.append(
            serve(
                "identity",
                tmp_path / "identity",
                {**common, "LKERN_IDENTITY_PORT": str(identity_port)},
            )
        )
        contacts = serve(
            "contacts", tmp_path, {**common, "LKERN_CONTACTS_GRPC_PORT": str(contacts_grpc)}
        )
        started.append(contacts)
        # Two replicas of orders on one database, started together.
        orders = [start("orders", tmp_path / f"orders-{n}", common) for n in range(2)]
        started.extend(orders)
        for replica in orders:
            replica.process.wait_healthy(replica.base_url)
        yield contacts, orders
    finally:
        for service in started:
            service.process.stop()
        broker.stop()


def wait_until(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_the_whole_story(cluster):
    contacts, (orders_a, orders_b) = cluster
    contact = API.post(
        f"{contacts.base_url}/api/v1/contacts",
        json={"name": "Ada", "email": "ada@example.com"},
    ).json()
    order = API.post(f"{orders_a.base_url}/api/v1/orders", json={"contact_id": contact["id"]})
    assert order.status_code == 201, order.text

    renamed = API.patch(
        f"{contacts.base_url}/api/v1/contacts/{contact['id']}", json={"name": "Ada L."}
    )
    assert renamed.status_code == 200

    def shows_new_name() -> bool:
        items = API.get(f"{orders_b.base_url}/api/v1/orders").json()["items"]
        return [item["customer_name"] for item in items] == ["Ada L."]

    wait_until(shows_new_name)

    deactivated = API.post(f"{contacts.base_url}/api/v1/contacts/{contact['id']}/deactivate")
    assert deactivated.status_code == 200
    refused = API.post(f"{orders_b.base_url}/api/v1/orders", json={"contact_id": contact["id"]})
    assert refused.status_code == 422
    assert refused.json()["code"] == "CONTACT_INVALID" and "inactive" in refused.json()["detail"]


def test_hundred_concurrent_creates_over_two_replicas_give_gap_free_codes(cluster):
    contacts, replicas = cluster
    contact = API.post(
        f"{contacts.base_url}/api/v1/contacts", json={"name": "Bulk", "email": "bulk@example.com"}
    ).json()

    async def create_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, headers=bearer("member")) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{replicas[n % 2].base_url}/api/v1/orders",
                        json={"contact_id": contact["id"]},
                    )
                    for n in range(100)
                )
            )

    responses = asyncio.run(create_all())
    assert [r.status_code for r in responses] == [201] * 100, [
        r.text for r in responses if r.status_code != 201
    ][:3]
    codes = [r.json()["code"] for r in responses]
    assert len(set(codes)) == 100
    assert all(re.fullmatch(r"ORD-\d{4}-\d{4}", code) for code in codes)
    assert sorted(int(code.rsplit("-", 1)[1]) for code in codes) == list(range(1, 101))
