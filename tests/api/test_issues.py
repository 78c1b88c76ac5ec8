"""Issues' REST API (§11 issues), with assignees and contacts checked over real gRPC,
attachments on local files, on both database backends."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from lkern.platform.events.outbox import OutboxMessage
from lkern.platform.grpc.client import GrpcClient
from lkern.platform.storage.local import LocalObjectStore
from lkern.platform.storage.port import StorageUnavailable
from tests.api.test_contacts import assert_problem
from tests.api.test_identity import login, new_user
from tests.api.test_orders import new_contact
from tests.conftest import ServiceUnderTest
from tests.support.processes import free_port
from tests.support.tokens import mint

BASE = "/api/v1/issues"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
PDF = b"%PDF-1.7\n" + b"0" * 5000


async def new_issue(issues: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"title": "Login fails", "type": "bug", **fields}
    response = await issues.post(BASE, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def attach(
    issues: httpx.AsyncClient, issue_id: str, content: bytes = PNG, name: str = "shot.png"
) -> httpx.Response:
    return await issues.post(
        f"{BASE}/{issue_id}/attachments", files={"file": (name, content, "image/png")}
    )


class TestCreate:
    async def test_codes_by_type_reporter_location_and_etag(self, issues_service, issues):
        reporter = str(uuid.uuid4())
        async with issues_service.client(None) as client:
            client.headers["Authorization"] = f"Bearer {mint('member', subject=reporter)}"
            answer = await client.post(BASE, json={"title": " Crash ", "type": "bug"})
        assert answer.status_code == 201, answer.text
        issue = answer.json()
        assert answer.headers["location"] == f"{BASE}/{issue['id']}"
        assert answer.headers["etag"] == '"1"'
        assert re.fullmatch(r"BUG-\d{4}-0001", issue["code"])
        assert issue["title"] == "Crash" and issue["reporter_id"] == reporter
        assert issue["status"] == "open" and issue["priority"] == "medium"
        assert issue["attachments"] == [] and issue["resolved_at"] is None
        prefixes = [
            (await new_issue(issues, type=t))["code"][:3]
            for t in ("feature", "improvement", "task", "bug")
        ]
        assert prefixes == ["FEA", "IMP", "TSK", "BUG"]
        assert (await new_issue(issues))["code"].endswith("-0003")

    async def test_assignee_must_be_an_active_user(self, issues, identity):
        admin = (await login(identity))["access_token"]
        user, _ = await new_user(identity, admin)
        assert (await new_issue(issues, assignee_id=user["id"]))["assignee_id"] == user["id"]
        missing = await issues.post(
            BASE, json={"title": "x", "type": "task", "assignee_id": str(uuid.uuid4())}
        )
        body = assert_problem(missing, 422, "ASSIGNEE_INVALID")
        assert body["errors"][0]["field"] == "body.assignee_id"
        await identity.patch(
            f"/api/v1/users/{user['id']}",
            json={"is_active": False},
            headers={"Authorization": f"Bearer {admin}"},
        )
        inactive = await issues.post(
            BASE, json={"title": "x", "type": "task", "assignee_id": user["id"]}
        )
        assert_problem(inactive, 422, "ASSIGNEE_INVALID")

    async def test_contact_must_be_valid(self, issues, contacts):
        contact = await new_contact(contacts)
        assert (await new_issue(issues, contact_id=contact["id"]))["contact_id"] == contact["id"]
        await contacts.post(f"/api/v1/contacts/{contact['id']}/deactivate")
        answer = await issues.post(
            BASE, json={"title": "x", "type": "bug", "contact_id": contact["id"]}
        )
        assert_problem(answer, 422, "CONTACT_INVALID")

    async def test_contacts_down_is_a_503(self, issues_service, issues):
        runtime = issues_service.runtime
        reachable = runtime.clients["contacts"]
        # The same client, pointed where nothing listens.
        runtime.clients["contacts"] = GrpcClient(
            f"127.0.0.1:{free_port()}",
            caller="issues",
            peer="contacts",
            secret=runtime.settings.service_secret_value(),
            policy=reachable.policy,
            unavailable_code=reachable.unavailable_code,
        )
        try:
            answer = await issues.post(
                BASE, json={"title": "x", "type": "bug", "contact_id": str(uuid.uuid4())}
            )
            assert_problem(answer, 503, "CONTACTS_UNAVAILABLE")
        finally:
            await runtime.clients["contacts"].close()
            runtime.clients["contacts"] = reachable

    @pytest.mark.parametrize(
        "body",
        [
            {"type": "bug"},
            {"title": "", "type": "bug"},
            {"title": "x" * 256, "type": "bug"},
            {"title": "x", "type": "epic"},
            {"title": "x", "type": "bug", "priority": "urgent"},
            {"title": "x", "type": "bug", "status": "closed"},
            {"title": "x", "type": "bug", "reporter_id": str(uuid.uuid4())},
        ],
    )
    async def test_bad_bodies_are_422(self, issues, body):
        assert_problem(await issues.post(BASE, json=body), 422, "VALIDATION_FAILED")

    async def test_viewers_cannot_report(self, issues_service):
        async with issues_service.client("viewer") as viewer:
            answer = await viewer.post(BASE, json={"title": "x", "type": "bug"})
        assert answer.status_code == 403

    async def test_100_concurrent_creates_get_gap_free_codes(self, issues):
        created = await asyncio.gather(*(new_issue(issues, type="task") for _ in range(100)))
        numbers = sorted(int(issue["code"].rsplit("-", 1)[1]) for issue in created)
        assert numbers == list(range(1, 101))


class TestStatusMachine:
    async def test_the_whole_way_with_timestamps_and_versions(self, issues):
        issue = await new_issue(issues)
        path = f"{BASE}/{issue['id']}/transition"
        answer = await issues.post(path, json={"to": "in_progress"}, headers={"If-Match": '"1"'})
        assert answer.status_code == 200 and answer.headers["etag"] == '"2"'
        resolved = (await issues.post(path, json={"to": "resolved"})).json()
        assert resolved["resolved_at"] is not None
        reopened = (await issues.post(path, json={"to": "in_progress"})).json()
        assert reopened["resolved_at"] is None
        await issues.post(path, json={"to": "resolved"})
        closed = (await issues.post(path, json={"to": "closed"})).json()
        assert closed["status"] == "closed" and closed["closed_at"] and closed["resolved_at"]
        assert closed["version"] == 6
        refused = await issues.post(path, json={"to": "open"})
        body = assert_problem(refused, 409, "INVALID_TRANSITION")
        assert body["allowed"] == []

    async def test_open_cannot_jump_to_resolved(self, issues):
        issue = await new_issue(issues)
        refused = await issues.post(f"{BASE}/{issue['id']}/transition", json={"to": "resolved"})
        body = assert_problem(refused, 409, "INVALID_TRANSITION")
        assert body["allowed"] == ["in_progress", "rejected"]

    async def test_stale_if_match_is_412(self, issues):
        issue = await new_issue(issues)
        answer = await issues.post(
            f"{BASE}/{issue['id']}/transition", json={"to": "rejected"}, headers={"If-Match": '"7"'}
        )
        assert_problem(answer, 412, "VERSION_MISMATCH")


class TestUpdate:
    async def test_changing_the_type_keeps_the_code(self, issues):
        issue = await new_issue(issues)
        answer = await issues.patch(f"{BASE}/{issue['id']}", json={"type": "feature"})
        assert answer.status_code == 200
        assert answer.json()["code"] == issue["code"] and answer.json()["type"] == "feature"

    async def test_null_for_a_required_field_is_422(self, issues):
        issue = await new_issue(issues)
        answer = await issues.patch(f"{BASE}/{issue['id']}", json={"title": None})
        assert_problem(answer, 422, "VALIDATION_FAILED")

    async def test_unknown_issue_is_404(self, issues):
        answer = await issues.patch(f"{BASE}/{uuid.uuid4()}", json={"title": "x"})
        assert_problem(answer, 404, "ISSUE_NOT_FOUND")


class TestReplace:
    async def test_put_resets_what_it_leaves_out_and_keeps_code_and_status(self, issues):
        issue = await new_issue(issues, priority="critical", description="long story")
        path = f"{BASE}/{issue['id']}"
        await issues.post(f"{path}/transition", json={"to": "in_progress"})
        answer = await issues.put(
            path, json={"title": "Shorter", "type": "task"}, headers={"If-Match": '"2"'}
        )
        assert answer.status_code == 200, answer.text
        replaced = answer.json()
        assert replaced["title"] == "Shorter" and replaced["type"] == "task"
        assert replaced["priority"] == "medium" and replaced["description"] is None
        assert replaced["code"] == issue["code"] and replaced["status"] == "in_progress"
        assert answer.headers["etag"] == '"3"'
        stale = await issues.put(
            path, json={"title": "x", "type": "bug"}, headers={"If-Match": '"2"'}
        )
        assert_problem(stale, 412, "VERSION_MISMATCH")
        missing = await issues.put(path, json={"type": "bug"})
        assert_problem(missing, 422, "VALIDATION_FAILED")

    async def test_updated_carries_the_previous_values(self, issues, issues_service):
        issue = await new_issue(issues, priority="low")
        await issues.patch(
            f"{BASE}/{issue['id']}", json={"priority": "high", "title": "Login fails"}
        )
        async with issues_service.runtime.unit_of_work() as uow:
            payloads = await uow.session.scalars(
                select(OutboxMessage.payload).where(
                    OutboxMessage.topic == "lkern.issues.updated",
                    OutboxMessage.key == issue["id"],
                )
            )
            [event] = [json.loads(payload) for payload in payloads]
        assert event["data"]["previous"] == {"priority": "low"}
        assert event["data"]["priority"] == "high" and event["data"]["version"] == 2


class TestList:
    async def test_filters_search_and_priority_order(self, issues):
        reporter = str(uuid.uuid4())
        for title, priority, kind in [
            ("Printer on fire", "critical", "bug"),
            ("Dark mode", "low", "feature"),
            ("Faster search", "high", "improvement"),
            ("Order paper", "medium", "task"),
        ]:
            await new_issue(issues, title=title, priority=priority, type=kind)
        page = (await issues.get(BASE, params={"sort_by": "priority"})).json()
        assert [i["priority"] for i in page["items"]] == ["low", "medium", "high", "critical"]
        assert page["total"] == 4 and page["has_more"] is False
        bugs = (await issues.get(BASE, params={"type": "bug"})).json()["items"]
        assert [i["title"] for i in bugs] == ["Printer on fire"]
        found = (await issues.get(BASE, params={"search": "SEARCH"})).json()["items"]
        assert [i["title"] for i in found] == ["Faster search"]
        by_code = (await issues.get(BASE, params={"search": "fea-"})).json()["items"]
        assert [i["title"] for i in by_code] == ["Dark mode"]
        nobody = (await issues.get(BASE, params={"reporter_id": reporter})).json()
        assert nobody["items"] == []

    async def test_limit_is_at_most_500(self, issues):
        assert (await issues.get(BASE, params={"limit": 500})).status_code == 200
        assert_problem(await issues.get(BASE, params={"limit": 501}), 422, "VALIDATION_FAILED")

    @pytest.mark.parametrize(
        "params", [{"sort_by": "title"}, {"status": "done"}, {"assignee_id": "me"}]
    )
    async def test_bad_filters_are_422(self, issues, params):
        assert_problem(await issues.get(BASE, params=params), 422, "VALIDATION_FAILED")


class TestAttachments:
    async def test_upload_list_download_and_remove(self, issues, issues_service):
        issue = await new_issue(issues)
        answer = await attach(issues, issue["id"], PNG, "../../screen shot.png")
        assert answer.status_code == 201, answer.text
        file = answer.json()
        assert file["filename"] == "screen shot.png" and file["content_type"] == "image/png"
        assert file["size"] == len(PNG) and "object_key" not in file
        assert answer.headers["etag"] == '"2"'
        read = (await issues.get(f"{BASE}/{issue['id']}")).json()
        assert [f["file_id"] for f in read["attachments"]] == [file["file_id"]]
        assert read["version"] == 2

        download = await issues.get(f"{BASE}/{issue['id']}/attachments/{file['file_id']}")
        assert download.status_code == 307
        url = download.headers["location"]
        async with issues_service.client(None) as anonymous:
            fetched = await anonymous.get(url)
        assert fetched.status_code == 200, fetched.text
        assert fetched.content == PNG
        assert fetched.headers["content-type"] == "image/png"
        assert fetched.headers["content-disposition"].startswith("attachment;")

        link = await issues.get(
            f"{BASE}/{issue['id']}/attachments/{file['file_id']}", params={"redirect": "false"}
        )
        assert link.status_code == 200 and set(link.json()) == {"url", "expires_at"}

        removed = await issues.delete(f"{BASE}/{issue['id']}/attachments/{file['file_id']}")
        assert removed.status_code == 200 and removed.json()["attachments"] == []
        assert removed.headers["etag"] == '"3"'
        async with issues_service.client(None) as anonymous:
            assert (await anonymous.get(url)).status_code == 404

    async def test_an_altered_or_expired_link_is_403(self, issues, issues_service):
        issue = await new_issue(issues)
        file = (await attach(issues, issue["id"], PDF, "spec.pdf")).json()
        url = (
            await issues.get(
                f"{BASE}/{issue['id']}/attachments/{file['file_id']}", params={"redirect": "false"}
            )
        ).json()["url"]
        parts = urlsplit(url)
        async with issues_service.client(None) as anonymous:
            for altered in (
                url.replace("content_type=application%2Fpdf", "content_type=text%2Fhtml"),
                re.sub(r"expires=\d+", "expires=9999999999", url),
                re.sub(r"expires=\d+", "expires=1000", url),
            ):
                answer = await anonymous.get(altered)
                assert answer.status_code == 403, altered
            assert (await anonymous.get(f"{parts.path}?expires=1")).status_code == 422

    async def test_a_disguised_executable_is_415_and_changes_nothing(self, issues):
        issue = await new_issue(issues)
        answer = await attach(issues, issue["id"], b"MZ\x90\x00" + bytes(300), "cat.png")
        assert_problem(answer, 415, "UPLOAD_TYPE_NOT_ALLOWED")
        assert (await issues.get(f"{BASE}/{issue['id']}")).json()["version"] == 1

    async def test_too_large_is_413(self, issues, issues_service, monkeypatch):
        monkeypatch.setattr(issues_service.runtime.settings, "upload_max_bytes", 10_000)
        issue = await new_issue(issues)
        answer = await attach(issues, issue["id"], PNG + bytes(20_000))
        assert_problem(answer, 413, "UPLOAD_TOO_LARGE")
        assert (await issues.get(f"{BASE}/{issue['id']}")).json()["attachments"] == []

    async def test_no_file_is_422(self, issues):
        issue = await new_issue(issues)
        answer = await issues.post(f"{BASE}/{issue['id']}/attachments", data={"file": "text"})
        assert_problem(answer, 422, "UPLOAD_MISSING")

    async def test_unknown_attachment_is_404(self, issues):
        issue = await new_issue(issues)
        answer = await issues.get(f"{BASE}/{issue['id']}/attachments/{uuid.uuid4()}")
        assert_problem(answer, 404, "ATTACHMENT_NOT_FOUND")

    async def test_viewers_may_download_but_not_upload(self, issues, issues_service):
        issue = await new_issue(issues)
        file = (await attach(issues, issue["id"])).json()
        async with issues_service.client("viewer") as viewer:
            assert (await attach(viewer, issue["id"])).status_code == 403
            answer = await viewer.get(f"{BASE}/{issue['id']}/attachments/{file['file_id']}")
            assert answer.status_code == 307


class TestDeletion:
    async def test_soft_delete_keeps_files_and_permanent_delete_removes_them(
        self, issues, issues_service
    ):
        issue = await new_issue(issues)
        file = (await attach(issues, issue["id"])).json()
        store = issues_service.runtime.storage
        assert store is not None
        [key] = [f["object_key"] for f in await _stored(issues_service, issue["id"])]
        deleted = await issues.delete(f"{BASE}/{issue['id']}")
        assert deleted.status_code == 200 and deleted.json()["is_deleted"] is True
        assert await store.exists(key)
        restored = await issues.post(f"{BASE}/{issue['id']}/restore")
        assert (
            restored.status_code == 200
            and restored.json()["attachments"][0]["file_id"] == (file["file_id"])
        )
        purge = await issues.delete(f"{BASE}/{issue['id']}/permanent")
        assert purge.status_code == 200, purge.text
        assert purge.json()["status"] == "completed"
        assert not await store.exists(key)
        audits = (await issues.get("/api/v1/deletion-audits")).json()["items"]
        assert audits[0]["files_found"] == 1 and audits[0]["files_deleted"] == 1
        assert audits[0]["item_code"] == issue["code"]
        assert (await issues.get(f"{BASE}/{issue['id']}")).status_code == 404


async def _stored(service: ServiceUnderTest, issue_id: str) -> list[dict[str, Any]]:
    from lkern.issues.models import Issue

    async with service.runtime.unit_of_work() as uow:
        issue = await uow.session.get(Issue, uuid.UUID(issue_id))
        assert issue is not None
        return list(issue.attachments)


class FailingFor(LocalObjectStore):
    """The service's own store, refusing to delete the objects whose key ends so."""

    def __init__(self, store: LocalObjectStore, suffix: str) -> None:
        super().__init__(store.root, signer=store.signer, url_prefix=store.url_prefix)
        self.suffix = suffix

    async def delete(self, key: str) -> None:
        if key.endswith(self.suffix):
            raise StorageUnavailable("Refused for the test.")
        await super().delete(key)


async def test_some_files_failing_leave_a_partial_audit_and_an_event(issues, issues_service):
    runtime = issues_service.runtime
    issue = await new_issue(issues)
    for content, name in ((PNG, "a.png"), (PDF, "b.pdf")):
        assert (await attach(issues, issue["id"], content, name)).status_code == 201
    keys = [f["object_key"] for f in await _stored(issues_service, issue["id"])]
    store = runtime.storage
    assert isinstance(store, LocalObjectStore)
    runtime.storage = FailingFor(store, ".pdf")
    try:
        answer = await issues.delete(f"{BASE}/{issue['id']}/permanent")
    finally:
        runtime.storage = store
    assert answer.status_code == 200, answer.text
    outcome = answer.json()
    assert outcome["status"] == "partial"
    assert (await issues.get(f"{BASE}/{issue['id']}")).status_code == 404
    [audit] = [
        a
        for a in (await issues.get("/api/v1/cleanup/pending")).json()["items"]
        if a["id"] == outcome["audit_id"]
    ]
    assert (audit["files_found"], audit["files_deleted"], audit["files_failed"]) == (2, 1, 1)
    async with runtime.unit_of_work() as uow:
        failed = await uow.session.scalar(
            select(OutboxMessage.payload).where(
                OutboxMessage.topic == "lkern.issues.deletion_failed"
            )
        )
    assert failed is not None
    data = json.loads(failed)["data"]
    assert data["audit_id"] == outcome["audit_id"] and data["files_failed"] == 1
    retried = await issues.post(f"/api/v1/cleanup/retry/{outcome['audit_id']}")
    assert retried.json()["status"] == "completed"
    assert not any([await store.exists(key) for key in keys])
