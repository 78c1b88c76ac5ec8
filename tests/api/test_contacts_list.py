"""The list contract of §2 on the contacts list: envelope, filters, search, sort, bounds."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from lkern.contacts.models import Contact
from lkern.platform import pagination
from lkern.platform.ids import new_id
from tests.api.test_contacts import BASE, assert_problem, create


@pytest.fixture
async def people(contacts: httpx.AsyncClient) -> dict[str, str]:
    """Five contacts with known names; returns name -> id."""
    ids = {}
    for name, company, phone, active in [
        ("Charlie", "Zeta Corp", "+421905000001", True),
        ("alice", "Acme", None, True),
        ("Bob", "ACME Labs", "+421905000002", False),
        ("Dora", None, None, True),
        ("Eve_100%", "Evil", None, False),
    ]:
        created = await create(contacts, name=name, company=company, phone=phone, is_active=active)
        ids[name] = created["id"]
    return ids


async def names(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get(BASE, params=params)
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


class TestEnvelope:
    async def test_envelope_and_has_more(self, contacts, people):
        response = await contacts.get(BASE, params={"limit": 2, "skip": 1, "sort_by": "name"})
        body = response.json()
        assert set(body) == {"items", "total", "total_exact", "skip", "limit", "has_more"}
        assert body["total_exact"] is True
        assert body["total"] == 5 and body["skip"] == 1 and body["limit"] == 2
        assert body["has_more"] is True
        last = (await contacts.get(BASE, params={"limit": 2, "skip": 4})).json()
        assert len(last["items"]) == 1 and last["has_more"] is False

    async def test_default_limit_is_100(self, contacts, people):
        assert (await contacts.get(BASE)).json()["limit"] == 100

    @pytest.mark.parametrize(
        "params",
        [
            {"skip": -1},
            {"limit": 0},
            {"limit": 1001},
            {"limit": "ten"},
            {"sort_by": "password"},
            {"sort_order": "sideways"},
            {"search": "a"},
            {"is_active": "perhaps"},
            {"include_deleted": "often"},
        ],
    )
    async def test_bad_parameters_are_422(self, contacts, params):
        assert_problem(await contacts.get(BASE, params=params), 422, "VALIDATION_FAILED")


class TestSort:
    async def test_by_name_both_ways(self, contacts, people):
        ascending = await names(contacts, sort_by="name")
        assert ascending == sorted(ascending)
        assert await names(contacts, sort_by="name", sort_order="desc") == list(reversed(ascending))

    async def test_by_created_at(self, contacts, people):
        assert await names(contacts, sort_by="created_at") == list(people)

    async def test_ties_broken_by_id_so_pages_never_overlap(self, contacts):
        created = [await create(contacts, name="Same") for _ in range(7)]
        seen: list[str] = []
        for skip in range(0, 7, 3):
            page = (
                await contacts.get(BASE, params={"sort_by": "name", "limit": 3, "skip": skip})
            ).json()
            seen += [item["id"] for item in page["items"]]
        assert seen == sorted(item["id"] for item in created)


class TestFilters:
    async def test_is_active(self, contacts, people):
        assert set(await names(contacts, is_active=False)) == {"Bob", "Eve_100%"}
        assert set(await names(contacts, is_active=True)) == {"Charlie", "alice", "Dora"}

    @pytest.mark.parametrize(
        ("term", "expected"),
        [
            ("ACME", {"alice", "Bob"}),  # company, any case
            ("ali", {"alice"}),  # name
            ("905000002", {"Bob"}),  # phone
            ("100%", {"Eve_100%"}),  # wildcards are literal
            ("e_1", {"Eve_100%"}),
            ("zz", set()),
        ],
    )
    async def test_search(self, contacts, people, term, expected):
        assert set(await names(contacts, search=term)) == expected

    async def test_search_matches_email(self, contacts):
        await create(contacts, name="Mailer", email="unique.box@example.org")
        assert await names(contacts, search="UNIQUE.BOX") == ["Mailer"]

    async def test_filters_combine_and_total_counts_matches(self, contacts, people):
        body = (await contacts.get(BASE, params={"search": "acme", "is_active": True})).json()
        assert [item["name"] for item in body["items"]] == ["alice"] and body["total"] == 1


class TestBoundedTotal:
    """§2: `total` counts up to a cap and then says it stopped; `has_more` stays exact."""

    async def test_total_stops_at_the_cap_and_has_more_stays_exact(
        self, contacts, people, monkeypatch
    ):
        monkeypatch.setattr(pagination, "TOTAL_CAP", 3)
        first = (await contacts.get(BASE, params={"limit": 2})).json()
        assert first["total"] == 3 and first["total_exact"] is False
        assert first["has_more"] is True
        # Past the cap: the page and has_more are still those of all five matches.
        last = (await contacts.get(BASE, params={"limit": 2, "skip": 4})).json()
        assert len(last["items"]) == 1 and last["has_more"] is False
        assert last["total"] == 3 and last["total_exact"] is False
        beyond = (await contacts.get(BASE, params={"limit": 2, "skip": 3})).json()
        assert len(beyond["items"]) == 2 and beyond["has_more"] is False
        # As many matches as the cap: counted exactly.
        active = (await contacts.get(BASE, params={"is_active": True})).json()
        assert active["total"] == 3 and active["total_exact"] is True

    async def test_at_the_real_cap(self, contacts, contacts_service):
        """10,001 contacts in one bulk INSERT: the count stops at 10,000."""
        cap = pagination.TOTAL_CAP
        rows = [
            {"id": new_id(), "name": f"bulk {n}", "email": f"bulk{n}@example.com"}
            for n in range(cap + 1)
        ]
        async with contacts_service.runtime.engine.begin() as connection:
            await connection.execute(insert(Contact), rows)
        body = (await contacts.get(BASE, params={"limit": 1, "skip": cap})).json()
        assert body["total"] == cap and body["total_exact"] is False
        assert len(body["items"]) == 1 and body["has_more"] is False
        narrowed = (await contacts.get(BASE, params={"search": "bulk 1000", "limit": 1})).json()
        assert narrowed["total"] == 2 and narrowed["total_exact"] is True  # 1000 and 10000
