"""Contacts' REST API against §2, §3 and §11, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

BASE = "/api/v1/contacts"
PROBLEM = "application/problem+json"


async def create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "Ada Lovelace", "email": f"{uuid.uuid4().hex[:10]}@example.com", **fields}
    response = await client.post(BASE, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = dict(response.json())
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"] and body["detail"] and body["type"]
    assert len(body["trace_id"]) == 32
    return body


class TestCreate:
    async def test_created_with_location_etag_and_normalised_fields(
        self, contacts: httpx.AsyncClient
    ):
        response = await contacts.post(
            BASE,
            json={"name": "  Ada  ", "email": "Ada@Example.COM", "phone": "+421 905 123 456"},
        )
        assert response.status_code == 201
        body = response.json()
        assert response.headers["location"] == f"{BASE}/{body['id']}"
        assert response.headers["etag"] == '"1"'
        assert body["name"] == "Ada"
        assert body["email"] == "ada@example.com"
        assert body["phone"] == "+421905123456"
        assert body["is_active"] is True and body["is_deleted"] is False
        assert body["version"] == 1 and body["deleted_at"] is None
        assert uuid.UUID(body["id"]).version == 7
        assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")

    async def test_read_back(self, contacts: httpx.AsyncClient):
        created = await create(contacts, company="ACME", notes="VIP")
        response = await contacts.get(f"{BASE}/{created['id']}")
        assert response.status_code == 200
        assert response.json() == created
        assert response.headers["etag"] == '"1"'

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"name": "", "email": "a@example.com"}, "body.name"),
            ({"name": "   ", "email": "a@example.com"}, "body.name"),
            ({"name": "x" * 256, "email": "a@example.com"}, "body.name"),
            ({"name": "A", "email": "not-an-email"}, "body.email"),
            ({"name": "A", "email": "a@example.com", "phone": "12"}, "body.phone"),
            ({"name": "A", "email": "a@example.com", "notes": "n" * 10_001}, "body.notes"),
            ({"name": 5, "email": "a@example.com"}, "body.name"),
            ({"name": "A", "email": "a@example.com", "is_active": "maybe"}, "body.is_active"),
            ({"name": "A", "email": "a@example.com", "unknown": 1}, "body.unknown"),
            ({"email": "a@example.com"}, "body.name"),
        ],
    )
    async def test_invalid_input_is_422_with_field(self, contacts: httpx.AsyncClient, body, field):
        problem = assert_problem(await contacts.post(BASE, json=body), 422, "VALIDATION_FAILED")
        assert field in {error["field"] for error in problem["errors"]}

    async def test_invalid_phone_number_is_422(self, contacts: httpx.AsyncClient):
        response = await contacts.post(
            BASE, json={"name": "A", "email": "a@example.com", "phone": "+999 123 456 789"}
        )
        problem = assert_problem(response, 422, "CONTACT_PHONE_INVALID")
        assert problem["errors"][0]["field"] == "body.phone"

    async def test_malformed_json_is_400(self, contacts: httpx.AsyncClient):
        response = await contacts.post(
            BASE, content=b'{"name": ', headers={"content-type": "application/json"}
        )
        assert_problem(response, 400, "MALFORMED_JSON")

    async def test_body_that_is_not_an_object_is_422(self, contacts: httpx.AsyncClient):
        assert_problem(await contacts.post(BASE, json=[1, 2]), 422, "VALIDATION_FAILED")

    async def test_duplicate_email_any_case_is_409(self, contacts: httpx.AsyncClient):
        first = await create(contacts, email="dup@example.com")
        response = await contacts.post(BASE, json={"name": "B", "email": "DUP@example.com"})
        problem = assert_problem(response, 409, "CONTACT_EMAIL_TAKEN")
        assert problem["existing_id"] == first["id"]
        assert problem["existing_deleted"] is False

    async def test_duplicate_phone_in_another_format_is_409(self, contacts: httpx.AsyncClient):
        await create(contacts, phone="+421905123456")
        response = await contacts.post(
            BASE, json={"name": "B", "email": "b@example.com", "phone": "00421 905 123 456"}
        )
        assert_problem(response, 409, "CONTACT_PHONE_TAKEN")

    async def test_email_of_a_deleted_contact_names_it(self, contacts: httpx.AsyncClient):
        first = await create(contacts, email="gone@example.com")
        assert (await contacts.delete(f"{BASE}/{first['id']}")).status_code == 200
        response = await contacts.post(BASE, json={"name": "B", "email": "gone@example.com"})
        problem = assert_problem(response, 409, "CONTACT_EMAIL_TAKEN")
        assert problem["existing_id"] == first["id"]
        assert problem["existing_deleted"] is True
        assert "deleted contact" in problem["detail"] and first["id"] in problem["detail"]

    async def test_contacts_without_phone_do_not_collide(self, contacts: httpx.AsyncClient):
        await create(contacts)
        await create(contacts)


class TestGet:
    async def test_unknown_id_is_404(self, contacts: httpx.AsyncClient):
        assert_problem(await contacts.get(f"{BASE}/{uuid.uuid4()}"), 404, "CONTACT_NOT_FOUND")

    async def test_malformed_id_is_404_on_every_method(self, contacts: httpx.AsyncClient):
        # Ids are matched as UUIDs by the router: no resource lives at a malformed one.
        for method in ("GET", "PATCH", "DELETE"):
            response = await contacts.request(method, f"{BASE}/not-a-uuid", json={})
            assert_problem(response, 404, "NOT_FOUND")

    async def test_soft_deleted_is_404_unless_asked_for(self, contacts: httpx.AsyncClient):
        created = await create(contacts)
        await contacts.delete(f"{BASE}/{created['id']}")
        assert_problem(await contacts.get(f"{BASE}/{created['id']}"), 404, "CONTACT_NOT_FOUND")
        response = await contacts.get(f"{BASE}/{created['id']}", params={"include_deleted": True})
        assert response.status_code == 200
        assert response.json()["is_deleted"] is True

    async def test_unknown_route_is_a_problem(self, contacts: httpx.AsyncClient):
        assert_problem(await contacts.get("/api/v1/nothing-here"), 404, "NOT_FOUND")

    async def test_collection_with_trailing_slash_is_not_redirected(
        self, contacts: httpx.AsyncClient
    ):
        response = await contacts.get(f"{BASE}/")
        assert response.status_code == 404


class TestUpdate:
    async def test_partial_update_bumps_version(self, contacts: httpx.AsyncClient):
        created = await create(contacts, company="Old", phone="+421905123456")
        response = await contacts.patch(f"{BASE}/{created['id']}", json={"company": "New"})
        assert response.status_code == 200
        body = response.json()
        assert body["company"] == "New"
        assert body["phone"] == "+421905123456"
        assert body["version"] == 2
        assert response.headers["etag"] == '"2"'
        assert body["updated_at"] > created["updated_at"]

    async def test_null_clears_optional_field_but_not_required(self, contacts: httpx.AsyncClient):
        created = await create(contacts, phone="+421905123456")
        response = await contacts.patch(f"{BASE}/{created['id']}", json={"phone": None})
        assert response.status_code == 200 and response.json()["phone"] is None
        response = await contacts.patch(f"{BASE}/{created['id']}", json={"name": None})
        assert_problem(response, 422, "VALIDATION_FAILED")

    async def test_if_match_current_version_succeeds(self, contacts: httpx.AsyncClient):
        created = await create(contacts)
        response = await contacts.patch(
            f"{BASE}/{created['id']}", json={"name": "B"}, headers={"If-Match": '"1"'}
        )
        assert response.status_code == 200

    async def test_if_match_stale_version_is_412_and_changes_nothing(
        self, contacts: httpx.AsyncClient
    ):
        created = await create(contacts)
        await contacts.patch(f"{BASE}/{created['id']}", json={"name": "B"})
        response = await contacts.patch(
            f"{BASE}/{created['id']}", json={"name": "C"}, headers={"If-Match": '"1"'}
        )
        problem = assert_problem(response, 412, "VERSION_MISMATCH")
        assert problem["current_version"] == 2
        assert (await contacts.get(f"{BASE}/{created['id']}")).json()["name"] == "B"

    async def test_malformed_if_match_is_422(self, contacts: httpx.AsyncClient):
        created = await create(contacts)
        response = await contacts.patch(
            f"{BASE}/{created['id']}", json={"name": "B"}, headers={"If-Match": "banana"}
        )
        problem = assert_problem(response, 422, "VALIDATION_FAILED")
        assert problem["errors"][0]["field"] == "header.If-Match"

    async def test_taking_another_contacts_email_is_409(self, contacts: httpx.AsyncClient):
        await create(contacts, email="one@example.com")
        second = await create(contacts)
        response = await contacts.patch(f"{BASE}/{second['id']}", json={"email": "ONE@example.com"})
        assert_problem(response, 409, "CONTACT_EMAIL_TAKEN")

    async def test_keeping_own_email_is_fine(self, contacts: httpx.AsyncClient):
        created = await create(contacts)
        response = await contacts.patch(f"{BASE}/{created['id']}", json={"email": created["email"]})
        assert response.status_code == 200

    async def test_updating_a_deleted_contact_is_404(self, contacts: httpx.AsyncClient):
        created = await create(contacts)
        await contacts.delete(f"{BASE}/{created['id']}")
        response = await contacts.patch(f"{BASE}/{created['id']}", json={"name": "B"})
        assert_problem(response, 404, "CONTACT_NOT_FOUND")


class TestReplace:
    async def test_put_replaces_and_resets_what_it_leaves_out(self, contacts: httpx.AsyncClient):
        created = await create(
            contacts, phone="+421905123456", company="ACME", notes="VIP", is_active=False
        )
        url = f"{BASE}/{created['id']}"
        response = await contacts.put(
            url, json={"name": "Grace Hopper", "email": "Grace@Example.com"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["name"] == "Grace Hopper" and body["email"] == "grace@example.com"
        # Optional fields the document leaves out go back to their defaults.
        assert body["phone"] is None and body["company"] is None and body["notes"] is None
        assert body["is_active"] is True
        assert body["version"] == 2 and response.headers["etag"] == '"2"'
        assert (await contacts.get(url)).json() == body

    async def test_put_normalises_like_create(self, contacts: httpx.AsyncClient):
        created = await create(contacts)
        response = await contacts.put(
            f"{BASE}/{created['id']}",
            json={"name": "Ada", "email": created["email"], "phone": "+421 905 123 456"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["phone"] == "+421905123456"
        bad = await contacts.put(
            f"{BASE}/{created['id']}",
            json={"name": "Ada", "email": created["email"], "phone": "+999 123 456 789"},
        )
        assert_problem(bad, 422, "CONTACT_PHONE_INVALID")

    @pytest.mark.parametrize(
        "body",
        [{"name": "No Email"}, {"email": "nameless@example.com"}, {"name": "A", "email": None}],
    )
    async def test_required_fields_are_required(self, contacts: httpx.AsyncClient, body):
        created = await create(contacts)
        response = await contacts.put(f"{BASE}/{created['id']}", json=body)
        assert_problem(response, 422, "VALIDATION_FAILED")

    async def test_if_match_and_stale_version(self, contacts: httpx.AsyncClient):
        created = await create(contacts)
        url = f"{BASE}/{created['id']}"
        body = {"name": "Ada", "email": created["email"]}
        current = await contacts.put(url, json=body, headers={"If-Match": '"1"'})
        assert current.status_code == 200 and current.json()["version"] == 2
        stale = await contacts.put(url, json={**body, "name": "Lost"}, headers={"If-Match": '"1"'})
        assert assert_problem(stale, 412, "VERSION_MISMATCH")["current_version"] == 2
        assert (await contacts.get(url)).json()["name"] == "Ada"

    async def test_taking_another_contacts_email_is_409(self, contacts: httpx.AsyncClient):
        first, second = await create(contacts), await create(contacts)
        response = await contacts.put(
            f"{BASE}/{second['id']}", json={"name": "Copy", "email": first["email"]}
        )
        assert assert_problem(response, 409, "CONTACT_EMAIL_TAKEN")["existing_id"] == first["id"]

    async def test_unknown_or_deleted_contact_is_404(self, contacts: httpx.AsyncClient):
        body = {"name": "Nobody", "email": "nobody@example.com"}
        assert_problem(
            await contacts.put(f"{BASE}/{uuid.uuid4()}", json=body), 404, "CONTACT_NOT_FOUND"
        )
        created = await create(contacts)
        await contacts.delete(f"{BASE}/{created['id']}")
        assert_problem(
            await contacts.put(f"{BASE}/{created['id']}", json=body), 404, "CONTACT_NOT_FOUND"
        )


class TestSoftDelete:
    async def test_delete_and_restore_cycle(self, contacts: httpx.AsyncClient):
        created = await create(contacts)
        deleted = await contacts.delete(f"{BASE}/{created['id']}")
        assert deleted.status_code == 200
        assert deleted.json()["is_deleted"] is True and deleted.json()["version"] == 2
        assert_problem(
            await contacts.delete(f"{BASE}/{created['id']}"), 409, "CONTACT_ALREADY_DELETED"
        )
        restored = await contacts.post(f"{BASE}/{created['id']}/restore")
        assert restored.status_code == 200
        assert restored.json()["is_deleted"] is False and restored.json()["version"] == 3
        assert_problem(
            await contacts.post(f"{BASE}/{created['id']}/restore"), 409, "CONTACT_NOT_DELETED"
        )
        assert (await contacts.get(f"{BASE}/{created['id']}")).status_code == 200

    async def test_delete_with_stale_if_match_is_412(self, contacts: httpx.AsyncClient):
        created = await create(contacts)
        response = await contacts.delete(f"{BASE}/{created['id']}", headers={"If-Match": '"7"'})
        assert_problem(response, 412, "VERSION_MISMATCH")

    async def test_deleted_hidden_from_list_unless_asked(self, contacts: httpx.AsyncClient):
        kept = await create(contacts)
        gone = await create(contacts)
        await contacts.delete(f"{BASE}/{gone['id']}")
        listed = (await contacts.get(BASE)).json()
        assert [item["id"] for item in listed["items"]] == [kept["id"]]
        everything = (await contacts.get(BASE, params={"include_deleted": True})).json()
        assert {item["id"] for item in everything["items"]} == {kept["id"], gone["id"]}


class TestActivation:
    async def test_deactivate_and_activate(self, contacts: httpx.AsyncClient):
        created = await create(contacts)
        response = await contacts.post(f"{BASE}/{created['id']}/deactivate")
        assert response.status_code == 200
        assert response.json()["is_active"] is False and response.json()["version"] == 2
        response = await contacts.post(
            f"{BASE}/{created['id']}/activate", headers={"If-Match": '"2"'}
        )
        assert response.json()["is_active"] is True and response.json()["version"] == 3

    async def test_action_with_stale_version_is_412(self, contacts: httpx.AsyncClient):
        created = await create(contacts)
        response = await contacts.post(
            f"{BASE}/{created['id']}/deactivate", headers={"If-Match": '"5"'}
        )
        assert_problem(response, 412, "VERSION_MISMATCH")

    async def test_unknown_contact_is_404(self, contacts: httpx.AsyncClient):
        response = await contacts.post(f"{BASE}/{uuid.uuid4()}/activate")
        assert_problem(response, 404, "CONTACT_NOT_FOUND")


class TestPermanentDelete:
    async def test_leaves_completed_audit(self, contacts: httpx.AsyncClient):
        created = await create(contacts)
        response = await contacts.delete(f"{BASE}/{created['id']}/permanent")
        assert response.status_code == 200
        outcome = response.json()
        assert outcome["status"] == "completed"
        response = await contacts.get(f"{BASE}/{created['id']}", params={"include_deleted": True})
        assert_problem(response, 404, "CONTACT_NOT_FOUND")
        audits = (await contacts.get("/api/v1/deletion-audits")).json()
        assert audits["total"] == 1 and audits["total_exact"] is True
        audit = audits["items"][0]
        assert audit["id"] == outcome["audit_id"]
        assert audit["item_id"] == created["id"]
        assert audit["item_type"] == "contact"
        assert audit["status"] == "completed"
        assert audit["files_found"] == 0 and audit["files_failed"] == 0
        assert audit["deleted_by"]  # the admin's subject, from the token
        assert audit["completed_at"] is not None

    async def test_soft_deleted_contact_can_be_purged_and_its_email_reused(
        self, contacts: httpx.AsyncClient
    ):
        created = await create(contacts, email="reuse@example.com")
        await contacts.delete(f"{BASE}/{created['id']}")
        assert (await contacts.delete(f"{BASE}/{created['id']}/permanent")).status_code == 200
        await create(contacts, email="reuse@example.com")

    async def test_unknown_contact_is_404(self, contacts: httpx.AsyncClient):
        response = await contacts.delete(f"{BASE}/{uuid.uuid4()}/permanent")
        assert_problem(response, 404, "CONTACT_NOT_FOUND")

    async def test_audits_newest_first_and_filtered_by_status(self, contacts: httpx.AsyncClient):
        ids = []
        for _ in range(3):
            created = await create(contacts)
            await contacts.delete(f"{BASE}/{created['id']}/permanent")
            ids.append(created["id"])
        audits = (
            await contacts.get("/api/v1/deletion-audits", params={"status": "completed"})
        ).json()
        assert [audit["item_id"] for audit in audits["items"]] == list(reversed(ids))
        pending = (
            await contacts.get("/api/v1/deletion-audits", params={"status": "pending"})
        ).json()
        assert pending["total"] == 0
        response = await contacts.get("/api/v1/deletion-audits", params={"status": "bogus"})
        assert_problem(response, 422, "VALIDATION_FAILED")
