"""${whose} REST API against §2 and §3, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.api.test_contacts import assert_problem

BASE = "/api/v1/${name}"
% if files:
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
% endif


async def create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post(BASE, json={"name": "Main hall", **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


class TestCreate:
    async def test_created_with_location_etag_and_normalised_name(self, ${name}: httpx.AsyncClient):
        response = await ${name}.post(BASE, json={"name": "  Main   hall "})
        assert response.status_code == 201, response.text
        body = response.json()
        assert response.headers["location"] == f"{BASE}/{body['id']}"
        assert response.headers["etag"] == '"1"'
        assert body["name"] == "Main hall"
        assert body["is_active"] is True and body["is_deleted"] is False
        assert body["version"] == 1 and body["deleted_at"] is None
        assert uuid.UUID(body["id"]).version == 7
% if prefix:
        assert body["code"].startswith("${prefix}-")
% endif
% if files:
        assert body["attachments"] == []
% endif

    async def test_read_back(self, ${name}: httpx.AsyncClient):
        created = await create(${name}, notes="By the door")
        response = await ${name}.get(f"{BASE}/{created['id']}")
        assert response.status_code == 200
        assert response.json() == created
        assert response.headers["etag"] == '"1"'
% if prefix:

    async def test_codes_count_up(self, ${name}: httpx.AsyncClient):
        first, second = await create(${name}), await create(${name})
        assert int(second["code"].rsplit("-", 1)[1]) == int(first["code"].rsplit("-", 1)[1]) + 1
% endif

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"name": ""}, "body.name"),
            ({"name": "   "}, "body.name"),
            ({"name": "x" * 256}, "body.name"),
            ({"name": 5}, "body.name"),
            ({"name": "A", "notes": "n" * 10_001}, "body.notes"),
            ({"name": "A", "is_active": "maybe"}, "body.is_active"),
            ({"name": "A", "unknown": 1}, "body.unknown"),
            ({}, "body.name"),
        ],
    )
    async def test_invalid_input_is_422_with_field(self, ${name}: httpx.AsyncClient, body, field):
        problem = assert_problem(await ${name}.post(BASE, json=body), 422, "VALIDATION_FAILED")
        assert field in {error["field"] for error in problem["errors"]}

    async def test_malformed_json_is_400(self, ${name}: httpx.AsyncClient):
        response = await ${name}.post(
            BASE, content=b'{"name": ', headers={"content-type": "application/json"}
        )
        assert_problem(response, 400, "MALFORMED_JSON")

    async def test_without_a_token_is_401(self, ${name}_service):
        async with ${name}_service.client(role=None) as anonymous:
            assert_problem(await anonymous.get(BASE), 401, "NOT_AUTHENTICATED")


class TestGet:
    async def test_unknown_id_is_404(self, ${name}: httpx.AsyncClient):
        response = await ${name}.get(f"{BASE}/{uuid.uuid4()}")
        assert_problem(response, 404, "${NOUN}_NOT_FOUND")

    async def test_soft_deleted_is_404_unless_asked_for(self, ${name}: httpx.AsyncClient):
        created = await create(${name})
        await ${name}.delete(f"{BASE}/{created['id']}")
        response = await ${name}.get(f"{BASE}/{created['id']}")
        assert_problem(response, 404, "${NOUN}_NOT_FOUND")
        response = await ${name}.get(f"{BASE}/{created['id']}", params={"include_deleted": True})
        assert response.status_code == 200
        assert response.json()["is_deleted"] is True


class TestList:
    async def test_envelope_sort_search_and_filter(self, ${name}: httpx.AsyncClient):
        for name, active in [("Cellar", True), ("Attic", True), ("Barn", False)]:
            await create(${name}, name=name, is_active=active)
        response = await ${name}.get(BASE, params={"limit": 2, "skip": 1, "sort_by": "name"})
        body = response.json()
        assert set(body) == {"items", "total", "total_exact", "skip", "limit", "has_more"}
        assert body["total"] == 3 and body["has_more"] is False
        assert [item["name"] for item in body["items"]] == ["Barn", "Cellar"]
        found = (await ${name}.get(BASE, params={"search": "ATT"})).json()["items"]
        assert [item["name"] for item in found] == ["Attic"]
        inactive = (await ${name}.get(BASE, params={"is_active": False})).json()["items"]
        assert [item["name"] for item in inactive] == ["Barn"]
        newest = await ${name}.get(BASE, params={"sort_by": "created_at", "sort_order": "desc"})
        assert [item["name"] for item in newest.json()["items"]] == ["Barn", "Attic", "Cellar"]

    @pytest.mark.parametrize(
        "params",
        [
            {"skip": -1},
            {"limit": 0},
            {"limit": 1001},
            {"sort_by": "password"},
            {"sort_order": "sideways"},
            {"search": "a"},
            {"is_active": "perhaps"},
        ],
    )
    async def test_bad_parameters_are_422(self, ${name}: httpx.AsyncClient, params):
        assert_problem(await ${name}.get(BASE, params=params), 422, "VALIDATION_FAILED")


class TestChange:
    async def test_partial_update_bumps_version(self, ${name}: httpx.AsyncClient):
        created = await create(${name}, notes="Old")
        response = await ${name}.patch(f"{BASE}/{created['id']}", json={"name": " New  name"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["name"] == "New name" and body["notes"] == "Old"
        assert body["version"] == 2 and response.headers["etag"] == '"2"'

    async def test_null_clears_optional_field_but_not_required(self, ${name}: httpx.AsyncClient):
        created = await create(${name}, notes="Old")
        response = await ${name}.patch(f"{BASE}/{created['id']}", json={"notes": None})
        assert response.status_code == 200 and response.json()["notes"] is None
        response = await ${name}.patch(f"{BASE}/{created['id']}", json={"name": None})
        assert_problem(response, 422, "VALIDATION_FAILED")

    async def test_put_replaces_and_resets_what_it_leaves_out(self, ${name}: httpx.AsyncClient):
        created = await create(${name}, notes="Old", is_active=False)
        url = f"{BASE}/{created['id']}"
        response = await ${name}.put(url, json={"name": "Other"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["name"] == "Other" and body["notes"] is None and body["is_active"] is True
        assert (await ${name}.get(url)).json() == body

    async def test_stale_if_match_is_412_and_changes_nothing(self, ${name}: httpx.AsyncClient):
        created = await create(${name})
        url = f"{BASE}/{created['id']}"
        await ${name}.patch(url, json={"name": "B"})
        stale = await ${name}.patch(url, json={"name": "C"}, headers={"If-Match": '"1"'})
        assert assert_problem(stale, 412, "VERSION_MISMATCH")["current_version"] == 2
        assert (await ${name}.get(url)).json()["name"] == "B"

    async def test_changing_a_deleted_${noun}_is_404(self, ${name}: httpx.AsyncClient):
        created = await create(${name})
        await ${name}.delete(f"{BASE}/{created['id']}")
        response = await ${name}.patch(f"{BASE}/{created['id']}", json={"name": "B"})
        assert_problem(response, 404, "${NOUN}_NOT_FOUND")


class TestDelete:
    async def test_delete_and_restore_cycle(self, ${name}: httpx.AsyncClient):
        created = await create(${name})
        url = f"{BASE}/{created['id']}"
        deleted = await ${name}.delete(url)
        assert deleted.status_code == 200
        assert deleted.json()["is_deleted"] is True and deleted.json()["version"] == 2
        assert_problem(await ${name}.delete(url), 409, "${NOUN}_ALREADY_DELETED")
        restored = await ${name}.post(f"{url}/restore")
        assert restored.status_code == 200 and restored.json()["version"] == 3
        assert_problem(await ${name}.post(f"{url}/restore"), 409, "${NOUN}_NOT_DELETED")

    async def test_deleted_hidden_from_list_unless_asked(self, ${name}: httpx.AsyncClient):
        kept, gone = await create(${name}), await create(${name})
        await ${name}.delete(f"{BASE}/{gone['id']}")
        listed = (await ${name}.get(BASE)).json()
        assert [item["id"] for item in listed["items"]] == [kept["id"]]
        everything = (await ${name}.get(BASE, params={"include_deleted": True})).json()
        assert {item["id"] for item in everything["items"]} == {kept["id"], gone["id"]}

    async def test_permanent_delete_leaves_a_completed_audit(self, ${name}: httpx.AsyncClient):
        created = await create(${name})
        response = await ${name}.delete(f"{BASE}/{created['id']}/permanent")
        assert response.status_code == 200
        assert response.json()["status"] == "completed"
        response = await ${name}.get(f"{BASE}/{created['id']}", params={"include_deleted": True})
        assert_problem(response, 404, "${NOUN}_NOT_FOUND")
        [audit] = (await ${name}.get("/api/v1/deletion-audits")).json()["items"]
        assert audit["item_id"] == created["id"] and audit["item_type"] == "${noun}"
% if prefix:
        assert audit["item_code"] == created["code"]
% endif

    async def test_unknown_${noun}_is_404(self, ${name}: httpx.AsyncClient):
        response = await ${name}.delete(f"{BASE}/{uuid.uuid4()}/permanent")
        assert_problem(response, 404, "${NOUN}_NOT_FOUND")
% if files:


class TestAttachments:
    async def test_upload_download_and_remove(self, ${name}: httpx.AsyncClient):
        created = await create(${name})
        url = f"{BASE}/{created['id']}/attachments"
        uploaded = await ${name}.post(url, files={"file": ("plan.png", PNG, "image/png")})
        assert uploaded.status_code == 201, uploaded.text
        file = uploaded.json()
        assert file["filename"] == "plan.png" and file["size"] == len(PNG)
        read = (await ${name}.get(f"{BASE}/{created['id']}")).json()
        assert [f["file_id"] for f in read["attachments"]] == [file["file_id"]]
        download = await ${name}.get(f"{url}/{file['file_id']}")
        assert download.status_code == 307
        fetched = await ${name}.get(download.headers["location"])
        assert fetched.status_code == 200 and fetched.content == PNG
        removed = await ${name}.delete(f"{url}/{file['file_id']}")
        assert removed.status_code == 200 and removed.json()["attachments"] == []

    async def test_unknown_attachment_is_404(self, ${name}: httpx.AsyncClient):
        created = await create(${name})
        response = await ${name}.get(f"{BASE}/{created['id']}/attachments/{uuid.uuid4()}")
        assert_problem(response, 404, "ATTACHMENT_NOT_FOUND")

    async def test_permanent_delete_removes_the_files(self, ${name}: httpx.AsyncClient):
        created = await create(${name})
        url = f"{BASE}/{created['id']}/attachments"
        await ${name}.post(url, files={"file": ("plan.png", PNG, "image/png")})
        purge = await ${name}.delete(f"{BASE}/{created['id']}/permanent")
        assert purge.status_code == 200 and purge.json()["status"] == "completed"
        [audit] = (await ${name}.get("/api/v1/deletion-audits")).json()["items"]
        assert audit["files_found"] == 1 and audit["files_deleted"] == 1
% endif
