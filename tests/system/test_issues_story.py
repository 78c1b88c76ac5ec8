"""Identity, contacts and two issues replicas as ``lkern serve`` processes on PostgreSQL,
a real Kafka-protocol broker and a real S3-protocol server (§8, §11 issues): attachments
for a contact's issues, a permanent deletion while S3 is away, and the cleanup that
follows exactly once although both replicas run the worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from lkern.platform.storage.s3 import S3Location, S3ObjectStore
from tests.conftest import IN_CI, new_database_url
from tests.storage.conftest import new_bucket
from tests.support.processes import free_port
from tests.support.proxy import ThreadedProxy
from tests.support.s3 import CREDENTIALS, MotoServer
from tests.support.tansu import TansuBroker, TansuUnavailable
from tests.support.tokens import bearer
from tests.system.conftest import ServedService, identity_env, serve, start

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("kafka")]

API = httpx.Client(headers=bearer("admin"), timeout=30)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
PDF = b"%PDF-1.7\n" + b"1" * 70_000


class Cluster:
    def __init__(
        self,
        contacts: ServedService,
        issues: list[ServedService],
        proxy: ThreadedProxy,
        s3_url: str,
        issues_db: str,
    ) -> None:
        self.contacts = contacts
        self.issues = issues
        self.proxy = proxy
        #: The bucket as S3 holds it, not through the proxy.
        self.s3_url = s3_url
        self.issues_db = issues_db

    def object_exists(self, key: str) -> bool:
        async def check() -> bool:
            store = S3ObjectStore(S3Location.parse(self.s3_url))
            try:
                return await store.exists(key)
            finally:
                await store.close()

        return asyncio.run(check())

    def query(self, sql: str, *args: Any) -> Any:
        async def run() -> Any:
            connection = await asyncpg.connect(self.issues_db.replace("+asyncpg", ""))
            try:
                return await connection.fetchval(sql, *args)
            finally:
                await connection.close()

        return asyncio.run(run())


@pytest.fixture
def cluster(request, tmp_path: Path, s3_server: MotoServer) -> Iterator[Cluster]:
    broker = TansuBroker(tmp_path / "tansu.log")
    try:
        broker.start()
    except TansuUnavailable as exc:
        if IN_CI:
            pytest.fail(f"the Kafka-protocol broker is mandatory in CI: {exc}")
        pytest.skip(f"tansu unavailable: {exc}")
    proxy = ThreadedProxy(s3_server.port)
    proxy.open()
    bucket = new_bucket()
    identity_port, identity_grpc, contacts_grpc = free_port(), free_port(), free_port()
    issues_db = new_database_url(request, "postgres", tmp_path / "i")
    common = {
        **identity_env(identity_port),
        **CREDENTIALS,
        "LKERN_BROKER_URL": broker.url,
        "LKERN_KAFKA_IDEMPOTENCE": "false",
        "LKERN_KAFKA_SESSION_TIMEOUT_MS": "1000",
        "LKERN_KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        "LKERN_KAFKA_REBALANCE_TIMEOUT_MS": "1000",
        "LKERN_IDENTITY_DATABASE_URL": new_database_url(request, "postgres", tmp_path / "id"),
        "LKERN_CONTACTS_DATABASE_URL": new_database_url(request, "postgres", tmp_path / "c"),
        "LKERN_ISSUES_DATABASE_URL": issues_db,
        "LKERN_ISSUES_STORAGE_URL": s3_server.url(bucket, proxy.endpoint),
        "LKERN_IDENTITY_GRPC_TARGET": f"127.0.0.1:{identity_grpc}",
        "LKERN_CONTACTS_GRPC_TARGET": f"127.0.0.1:{contacts_grpc}",
        "LKERN_CLEANUP_POLL_SECONDS": "0.2",
        "LKERN_CLEANUP_RETRY_BASE_SECONDS": "0.2",
    }
    started: list[ServedService] = []
    try:
        started.append(
            serve(
                "identity",
                tmp_path / "identity",
                {
                    **common,
                    "LKERN_IDENTITY_PORT": str(identity_port),
                    "LKERN_IDENTITY_GRPC_PORT": str(identity_grpc),
                },
            )
        )
        contacts = serve(
            "contacts",
            tmp_path / "contacts",
            {**common, "LKERN_CONTACTS_GRPC_PORT": str(contacts_grpc)},
        )
        started.append(contacts)
        # The first replica migrates the database; the second starts once it has.
        first = serve("issues", tmp_path / "issues-0", common)
        second = start("issues", tmp_path / "issues-1", common)
        second.process.wait_healthy(second.base_url)
        started.extend([first, second])
        yield Cluster(contacts, [first, second], proxy, s3_server.url(bucket), issues_db)
    finally:
        for service in started:
            service.process.stop()
        proxy.stop()
        broker.stop()


def wait_until(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_issues_with_attachments_across_replicas_and_an_s3_outage(cluster: Cluster) -> None:
    one, two = (replica.base_url for replica in cluster.issues)
    contact = API.post(
        f"{cluster.contacts.base_url}/api/v1/contacts",
        json={"name": "Grace", "email": "grace@example.com"},
    ).json()

    # Issues for the contact, with attachments, made on one replica…
    made = []
    for title, kind in (("Printer jams", "bug"), ("Faster export", "feature")):
        answer = API.post(
            f"{one}/api/v1/issues", json={"title": title, "type": kind, "contact_id": contact["id"]}
        )
        assert answer.status_code == 201, answer.text
        made.append(answer.json())
    bug, feature = made
    files = {}
    for issue in made:
        for content, name, media in ((PNG, "photo.png", "image/png"), (PDF, "log.pdf", "x/y")):
            answer = API.post(
                f"{one}/api/v1/issues/{issue['id']}/attachments",
                files={"file": (name, content, media)},
            )
            assert answer.status_code == 201, answer.text
            files[(issue["id"], name)] = answer.json()

    # …transitioned and downloaded on the other.
    path = f"{two}/api/v1/issues/{bug['id']}"
    for target in ("in_progress", "resolved"):
        assert API.post(f"{path}/transition", json={"to": target}).status_code == 200
    resolved = API.get(path).json()
    assert resolved["status"] == "resolved" and len(resolved["attachments"]) == 2
    redirect = API.get(f"{path}/attachments/{files[(bug['id'], 'log.pdf')]['file_id']}")
    assert redirect.status_code == 307
    downloaded = httpx.get(redirect.headers["location"], timeout=10)
    assert downloaded.content == PDF
    assert downloaded.headers["content-type"] == "application/pdf"

    # The feature request is deleted for good while S3 is away.
    keys = [
        f"issues/{feature['id']}/{files[(feature['id'], name)]['file_id']}.{ext}"
        for name, ext in (("photo.png", "png"), ("log.pdf", "pdf"))
    ]
    assert all(cluster.object_exists(key) for key in keys)
    cluster.proxy.close()
    purge = API.delete(f"{one}/api/v1/issues/{feature['id']}/permanent")
    assert purge.status_code == 503, purge.text
    assert purge.json()["detail"] == "Storage unavailable, item marked for cleanup."
    assert API.get(f"{two}/api/v1/issues/{feature['id']}").status_code == 404
    ready = API.get(f"{two}/health/ready")
    assert ready.status_code == 503 and ready.json()["checks"]["storage"] != "ok"
    [audit] = [
        item
        for item in API.get(f"{two}/api/v1/cleanup/pending").json()["items"]
        if item["item_id"] == feature["id"]
    ]
    assert audit["status"] == "pending"
    assert all(cluster.object_exists(key) for key in keys), "the outage lost objects"

    # S3 comes back: one of the two workers finishes the deletion, once.
    cluster.proxy.open()

    def completed() -> bool:
        audits = API.get(f"{one}/api/v1/deletion-audits").json()["items"]
        return any(a["id"] == audit["id"] and a["status"] == "completed" for a in audits)

    wait_until(completed)
    assert not any(cluster.object_exists(key) for key in keys)
    # Retried while S3 was still away, perhaps; completed by one replica, once.
    assert cluster.query("SELECT retry_count FROM deletion_audits WHERE id = $1", audit["id"]) >= 1
    finished = [
        line
        for replica in cluster.issues
        for line in replica.process.output().splitlines()
        if f"cleanup of audit {audit['id']}: completed" in line
    ]
    assert len(finished) == 1, finished
    events = cluster.query(
        "SELECT count(*) FROM outbox WHERE topic = 'lkern.issues.permanently_deleted' AND key = $1",
        feature["id"],
    )
    assert events == 1
    # The bug and its files are untouched.
    assert all(
        cluster.object_exists(key)
        for key in (f"issues/{bug['id']}/{files[(bug['id'], 'photo.png')]['file_id']}.png",)
    )
    assert API.get(f"{one}/api/v1/issues/{bug['id']}").status_code == 200
