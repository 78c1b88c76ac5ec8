"""Two issues replicas on one PostgreSQL database: what they must settle between them."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from sqlalchemy import func, select

from lkern.platform.app import create_app
from lkern.platform.events.outbox import OutboxMessage
from lkern.platform.models import DeletionAudit
from lkern.services import SERVICES
from tests.api.test_issues import BASE, PDF, PNG, attach
from tests.conftest import Fleet, ServiceUnderTest
from tests.events.helpers import eventually
from tests.storage.conftest import new_bucket
from tests.support.postgres import create_database, drop_database
from tests.support.proxy import TcpProxy
from tests.support.s3 import MotoServer


class Replicas:
    def __init__(self, services: list[ServiceUnderTest], proxy: TcpProxy) -> None:
        self.services = services
        #: In front of the S3 server both replicas use.
        self.proxy = proxy


@pytest.fixture(scope="module")
async def replicas(
    request: pytest.FixtureRequest,
    s3_server: MotoServer,
    fleet: Fleet,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Replicas]:
    if request.getfixturevalue("backend") != "postgres":
        pytest.skip("replicas share a PostgreSQL database")
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    url = await create_database(admin_url)
    proxy = TcpProxy(s3_server.port)
    await proxy.open()
    storage_url = s3_server.url(new_bucket(), proxy.endpoint)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(drop_database, admin_url, url)
        stack.push_async_callback(proxy.close)
        started = []
        for number in (1, 2):
            settings = await fleet.settings(
                "issues",
                tmp_path_factory.mktemp(f"issues-replica-{number}"),
                url,
                storage_url=storage_url,
                cleanup_poll_seconds=0.05,
                cleanup_retry_base_seconds=0.05,
            )
            # The first replica migrates; the second starts on the migrated schema.
            app = create_app(SERVICES["issues"], settings, migrate=number == 1)
            await stack.enter_async_context(app.router.lifespan_context(app))
            started.append(ServiceUnderTest(SERVICES["issues"], app))
        yield Replicas(started, proxy)


async def test_100_creates_over_two_replicas_get_gap_free_codes(replicas: Replicas) -> None:
    first, second = replicas.services
    async with first.client("member") as one, second.client("member") as two:
        answers = await asyncio.gather(
            *(
                (one, two)[n % 2].post(BASE, json={"title": f"race {n}", "type": "bug"})
                for n in range(100)
            )
        )
    assert all(answer.status_code == 201 for answer in answers), answers[0].text
    codes = [answer.json()["code"] for answer in answers]
    assert all(re.fullmatch(r"BUG-\d{4}-\d{4}", code) for code in codes)
    assert sorted(int(code.rsplit("-", 1)[1]) for code in codes) == list(range(1, 101))


async def test_both_workers_race_and_the_cleanup_happens_once(replicas: Replicas) -> None:
    first, second = replicas.services
    async with first.client() as client:
        issue = (await client.post(BASE, json={"title": "to purge", "type": "task"})).json()
        for content, name in ((PNG, "a.png"), (PDF, "b.pdf")):
            assert (await attach(client, issue["id"], content, name)).status_code == 201
        await replicas.proxy.close()
        answer = await client.delete(f"{BASE}/{issue['id']}/permanent")
        assert answer.status_code == 503
        [audit] = [
            a
            for a in (await client.get("/api/v1/cleanup/pending")).json()["items"]
            if a["item_id"] == issue["id"]
        ]
    await replicas.proxy.open()

    async def completed() -> bool:
        async with second.runtime.unit_of_work() as uow:
            row = await uow.session.get_one(DeletionAudit, uuid.UUID(audit["id"]))
            return row.status == "completed"

    await eventually(completed, timeout=15)
    async with first.runtime.unit_of_work() as uow:
        row = await uow.session.get_one(DeletionAudit, uuid.UUID(audit["id"]))
        events = await uow.session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.topic == "lkern.issues.permanently_deleted",
                OutboxMessage.key == issue["id"],
            )
        )
    # Completed once, by whichever replica claimed it: one event, each file deleted once.
    assert row.retry_count >= 1 and row.files_deleted == 2
    assert events == 1
