"""Issues on a real S3-protocol server that goes away (§8): nothing points at a missing
object, and an interrupted permanent deletion is finished once S3 is back.

S3 is moto behind a TCP proxy; the tests close the proxy, so the objects
survive the "outage" and can be checked afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from lkern.cli import main
from lkern.issues.models import Issue
from lkern.platform.app import create_app
from lkern.platform.models import DeletionAudit
from lkern.platform.storage.s3 import PART_BYTES, S3Location, S3ObjectStore
from lkern.services import SERVICES
from tests.api.test_contacts import assert_problem
from tests.api.test_issues import BASE, PDF, PNG, attach, new_issue
from tests.conftest import Fleet, ServiceUnderTest, new_database_url
from tests.events.helpers import eventually
from tests.storage.conftest import new_bucket
from tests.support.proxy import TcpProxy
from tests.support.s3 import MotoServer


class S3Issues:
    def __init__(self, service: ServiceUnderTest, proxy: TcpProxy, direct: S3ObjectStore):
        self.service = service
        self.proxy = proxy
        #: The same bucket, not through the proxy: what S3 really holds.
        self.direct = direct

    async def keys(self, issue_id: str) -> list[str]:
        async with self.service.runtime.unit_of_work() as uow:
            issue = await uow.session.get(Issue, uuid.UUID(issue_id))
            return [] if issue is None else [f["object_key"] for f in issue.attachments]

    async def audit(self, audit_id: str) -> DeletionAudit:
        async with self.service.runtime.unit_of_work() as uow:
            return await uow.session.get_one(DeletionAudit, uuid.UUID(audit_id))


@pytest.fixture(scope="module")
async def s3_issues(
    request: pytest.FixtureRequest,
    s3_server: MotoServer,
    fleet: Fleet,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[S3Issues]:
    backend = request.getfixturevalue("backend")
    tmp = tmp_path_factory.mktemp(f"issues-s3-{backend}")
    proxy = TcpProxy(s3_server.port)
    await proxy.open()
    bucket = new_bucket()
    settings = await fleet.settings(
        "issues",
        tmp,
        new_database_url(request, backend, tmp),
        storage_url=s3_server.url(bucket, proxy.endpoint),
        cleanup_poll_seconds=0.2,
        cleanup_retry_base_seconds=0.2,
        upload_max_bytes=4 * PART_BYTES,
    )
    app = create_app(SERVICES["issues"], settings)
    direct = S3ObjectStore(S3Location.parse(s3_server.url(bucket)))
    async with app.router.lifespan_context(app):
        yield S3Issues(ServiceUnderTest(SERVICES["issues"], app), proxy, direct)
    await direct.close()
    await proxy.close()


@pytest.fixture
async def s3(s3_issues: S3Issues) -> AsyncIterator[S3Issues]:
    if s3_issues.proxy.closed:
        await s3_issues.proxy.open()
    await s3_issues.service.wipe()
    yield s3_issues


@pytest.fixture
async def client(s3: S3Issues) -> AsyncIterator[httpx.AsyncClient]:
    async with s3.service.client() as http:
        yield http


async def test_attachments_round_trip_through_s3(s3: S3Issues, client: httpx.AsyncClient) -> None:
    issue = await new_issue(client)
    file = (await attach(client, issue["id"], PDF, "spec.pdf")).json()
    [key] = await s3.keys(issue["id"])
    assert key == f"issues/{issue['id']}/{file['file_id']}.pdf"
    assert await s3.direct.exists(key)
    link = await client.get(
        f"{BASE}/{issue['id']}/attachments/{file['file_id']}", params={"redirect": "false"}
    )
    async with httpx.AsyncClient() as outside:
        fetched = await outside.get(link.json()["url"])
    assert fetched.content == PDF
    assert fetched.headers["content-disposition"].startswith('attachment; filename="spec.pdf"')
    ready = await client.get("/health/ready")
    assert ready.json()["checks"]["storage"] == "ok"


async def test_s3_dying_mid_upload_leaves_no_row_pointing_at_nothing(
    s3: S3Issues, client: httpx.AsyncClient
) -> None:
    issue = await new_issue(client)
    boundary = "lkern-test-boundary"

    async def body() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        yield PNG
        sent = len(PNG)
        while sent < PART_BYTES * 3:
            if sent > PART_BYTES + (1 << 20):
                await s3.proxy.close()  # the first part is in S3; now S3 goes away
            yield os.urandom(1 << 20)
            sent += 1 << 20
        yield f"\r\n--{boundary}--\r\n".encode()

    answer = await client.post(
        f"{BASE}/{issue['id']}/attachments",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_problem(answer, 503, "STORAGE_UNAVAILABLE")
    await s3.proxy.open()
    after = (await client.get(f"{BASE}/{issue['id']}")).json()
    assert after["attachments"] == [] and after["version"] == 1
    ready = await client.get("/health/ready")
    assert ready.status_code == 200


async def test_readiness_names_storage_when_it_is_away(
    s3: S3Issues, client: httpx.AsyncClient
) -> None:
    await s3.proxy.close()
    ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["storage"] != "ok"
    assert ready.json()["checks"]["database"] == "ok"


async def _deletion_interrupted(s3: S3Issues, client: httpx.AsyncClient) -> dict[str, Any]:
    """An issue with two attachments, permanently deleted while S3 is away."""
    issue = await new_issue(client)
    for content, name in ((PNG, "a.png"), (PDF, "b.pdf")):
        assert (await attach(client, issue["id"], content, name)).status_code == 201
    keys = await s3.keys(issue["id"])
    await s3.proxy.close()
    answer = await client.delete(f"{BASE}/{issue['id']}/permanent")
    body = assert_problem(answer, 503, "STORAGE_UNAVAILABLE")
    assert body["detail"] == "Storage unavailable, item marked for cleanup."
    assert (await client.get(f"{BASE}/{issue['id']}")).status_code == 404
    listed = (await client.get(BASE, params={"include_deleted": "true"})).json()["items"]
    assert issue["id"] not in [item["id"] for item in listed]
    pending = (await client.get("/api/v1/cleanup/pending")).json()["items"]
    [audit] = [a for a in pending if a["item_id"] == issue["id"]]
    assert audit["status"] == "pending" and audit["files_found"] == 2
    assert audit["files_deleted"] == 0 and audit["files_failed"] == 2
    for key in keys:
        assert await s3.direct.exists(key), "an outage must never lose the objects"
    return {"issue": issue, "audit_id": audit["id"], "keys": keys}


async def test_the_worker_finishes_an_interrupted_deletion(
    s3: S3Issues, client: httpx.AsyncClient
) -> None:
    case = await _deletion_interrupted(s3, client)
    await s3.proxy.open()

    async def completed() -> bool:
        return (await s3.audit(case["audit_id"])).status == "completed"

    await eventually(completed, timeout=15)
    audit = await s3.audit(case["audit_id"])
    assert audit.files_deleted == 2 and audit.files_failed == 0
    assert audit.retry_count >= 1 and audit.last_retry_at is not None
    for key in case["keys"]:
        assert not await s3.direct.exists(key)
    assert await s3.keys(case["issue"]["id"]) == []


async def test_the_retry_route_finishes_it_on_demand(
    s3: S3Issues, client: httpx.AsyncClient
) -> None:
    worker = s3.service.runtime.cleanup
    assert worker is not None
    poll, worker.poll_seconds = worker.poll_seconds, 3600.0  # keep the worker out of it
    try:
        case = await _deletion_interrupted(s3, client)
        still_down = await client.post(f"/api/v1/cleanup/retry/{case['audit_id']}")
        assert still_down.status_code == 200 and still_down.json()["status"] == "pending"
        await s3.proxy.open()
        answer = await client.post(f"/api/v1/cleanup/retry/{case['audit_id']}")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"audit_id": case["audit_id"], "status": "completed"}
        again = await client.post(f"/api/v1/cleanup/retry/{case['audit_id']}")
        assert again.json()["status"] == "completed"
        for key in case["keys"]:
            assert not await s3.direct.exists(key)
        unknown = await client.post(f"/api/v1/cleanup/retry/{uuid.uuid4()}")
        assert_problem(unknown, 404, "AUDIT_NOT_FOUND")
    finally:
        worker.poll_seconds = poll


async def test_the_cli_lists_and_finishes_it(s3: S3Issues, client: httpx.AsyncClient) -> None:
    worker = s3.service.runtime.cleanup
    assert worker is not None
    poll, worker.poll_seconds = worker.poll_seconds, 3600.0  # keep the worker out of it
    settings = s3.service.runtime.settings
    env = {
        "LKERN_DATA_DIR": str(settings.data_dir),
        "LKERN_ISSUES_DATABASE_URL": settings.resolved_database_url("issues"),
        "LKERN_ISSUES_STORAGE_URL": settings.resolved_storage_url("issues"),
    }

    def lkern(*args: str) -> Result:
        # In a thread: the command runs its own event loop, as from a shell.
        return CliRunner().invoke(main, list(args), env=env)

    try:
        case = await _deletion_interrupted(s3, client)
        # Issues only: the other services with files have no database in this test.
        listed = await asyncio.to_thread(lkern, "cleanup", "list", "issues")
        assert listed.exit_code == 0, listed.output
        assert "issues: 1 unfinished deletion(s)" in listed.stdout
        assert case["audit_id"] in listed.stdout and "pending" in listed.stdout
        still_down = await asyncio.to_thread(lkern, "cleanup", "retry", "issues")
        assert still_down.exit_code == 1
        assert f"issues: audit {case['audit_id']} pending" in still_down.stdout
        await s3.proxy.open()
        done = await asyncio.to_thread(lkern, "cleanup", "retry", "issues")
        assert done.exit_code == 0, done.output
        assert f"issues: audit {case['audit_id']} completed" in done.stdout
        assert "issues: 1 retried, 0 still waiting" in done.stdout
        for key in case["keys"]:
            assert not await s3.direct.exists(key)
        assert (await s3.audit(case["audit_id"])).status == "completed"
        wrong = await asyncio.to_thread(lkern, "cleanup", "retry", "contacts")
        assert wrong.exit_code == 2 and "keeps no files" in wrong.output
    finally:
        worker.poll_seconds = poll


async def test_cleanup_routes_are_for_admins(s3: S3Issues) -> None:
    async with s3.service.client("member") as member:
        assert (await member.get("/api/v1/cleanup/pending")).status_code == 403
        assert (await member.post("/api/v1/cleanup/retry")).status_code == 403
