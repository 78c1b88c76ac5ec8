"""Orders' REST API (§11 orders), with contacts validated over real gRPC, on both backends."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from lkern.orders.models import Order
from lkern.platform.app import create_app
from lkern.platform.resources import ResourceKind
from lkern.services import SERVICES
from tests.api.test_contacts import assert_problem
from tests.conftest import settings_for
from tests.events.helpers import eventually
from tests.support.processes import free_port
from tests.support.tokens import bearer, trust_test_key

BASE = "/api/v1/orders"
LINES = [
    {"description": "Resistor 10k", "part_id": "BZQM", "quantity": 3, "unit_price": "19.99"},
    {"description": "Capacitor 100n", "quantity": 10, "unit_price": 0.1},
]


async def new_contact(
    contacts: httpx.AsyncClient, name: str = "Ada Lovelace", **fields: Any
) -> dict[str, Any]:
    body = {"name": name, "email": f"{uuid.uuid4().hex[:10]}@example.com", **fields}
    response = await contacts.post("/api/v1/contacts", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def new_order(orders: httpx.AsyncClient, contact_id: str, **fields: Any) -> dict[str, Any]:
    response = await orders.post(BASE, json={"contact_id": contact_id, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


class TestCreate:
    async def test_exact_totals_code_and_headers(self, orders, contacts):
        contact = await new_contact(contacts)
        response = await orders.post(BASE, json={"contact_id": contact["id"], "lines": LINES})
        assert response.status_code == 201, response.text
        order = response.json()
        assert response.headers["location"] == f"{BASE}/{order['id']}"
        assert response.headers["etag"] == '"1"'
        assert re.fullmatch(r"ORD-\d{4}-0001", order["code"])
        assert order["status"] == "draft" and order["currency"] == "EUR"
        assert [line["line_total"] for line in order["lines"]] == ["59.97", "1.00"]
        assert order["lines"][1]["unit_price"] == "0.10"
        assert order["total"] == "60.97"
        assert order["version"] == 1

    async def test_codes_are_sequential(self, orders, contacts):
        contact = await new_contact(contacts)
        codes = [(await new_order(orders, contact["id"]))["code"] for _ in range(3)]
        assert [int(code.rsplit("-", 1)[1]) for code in codes] == [1, 2, 3]

    @pytest.mark.parametrize(
        ("price", "expected"), [("1.005", "1.01"), (2.675, "2.68"), ("0.1", "0.10"), (7, "7.00")]
    )
    async def test_money_is_rounded_half_up_by_rule(self, orders, contacts, price, expected):
        contact = await new_contact(contacts)
        line = {"description": "x", "quantity": 1, "unit_price": price}
        order = await new_order(orders, contact["id"], lines=[line])
        assert order["lines"][0]["unit_price"] == expected and order["total"] == expected

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"lines": [{"description": "x", "quantity": 0, "unit_price": "1"}]}, "quantity"),
            ({"lines": [{"description": "x", "quantity": 1, "unit_price": "-1"}]}, "unit_price"),
            ({"lines": [{"description": "x", "quantity": 1, "unit_price": "abc"}]}, "unit_price"),
            ({"lines": [{"description": "x", "quantity": 1, "unit_price": "NaN"}]}, "unit_price"),
            ({"lines": [{"description": "", "quantity": 1, "unit_price": "1"}]}, "description"),
            (
                {
                    "lines": [
                        {"description": "x", "part_id": "bz", "quantity": 1, "unit_price": "1"}
                    ]
                },
                "part_id",
            ),
            ({"currency": "XXX"}, "currency"),
            ({"currency": "eur"}, "currency"),
            ({"contact_id": "nope"}, "contact_id"),
        ],
    )
    async def test_invalid_input_is_422(self, orders, contacts, body, field):
        contact = await new_contact(contacts)
        response = await orders.post(BASE, json={"contact_id": contact["id"], **body})
        problem = assert_problem(response, 422, "VALIDATION_FAILED")
        assert any(field in error["field"] for error in problem["errors"]), problem


#: The largest amount an amount column stores: integer cents in a signed 64-bit column.
MAX_STORED = "92233720368547758.07"
TOP_PRICE = "999999999999.99"
#: Lines of any numbers, valid or not, and valid lines whose totals come close to the limit.
ANY_LINE = st.fixed_dictionaries(
    {
        "description": st.just("x"),
        "quantity": st.one_of(
            st.integers(min_value=-(2**70), max_value=2**70),
            st.integers(min_value=1, max_value=1_000_000),
            st.sampled_from([1_000_001, 2**31, 2**63]),
        ),
        "unit_price": st.one_of(
            st.integers(min_value=-(10**30), max_value=10**30),
            st.decimals(min_value=0, max_value=10**20, places=3).map(str),
            st.floats(min_value=0, max_value=1e30, allow_nan=False),
            st.sampled_from([MAX_STORED, "1e15"]),
        ),
    }
)
LARGE_LINE = st.fixed_dictionaries(
    {
        "description": st.just("x"),
        "quantity": st.one_of(
            st.sampled_from([46_117, 92_233, 92_234, 1_000_000]),
            st.integers(min_value=1, max_value=1_000_000),
        ),
        "unit_price": st.one_of(
            st.just(TOP_PRICE), st.decimals(min_value=0, max_value=TOP_PRICE, places=2).map(str)
        ),
    }
)


class TestAmountBounds:
    """Line totals and totals the amount columns cannot hold are a 422 naming the field."""

    @pytest.mark.parametrize(
        ("lines", "field"),
        [
            (
                [{"description": "x", "quantity": 1_000_000, "unit_price": TOP_PRICE}],
                "0.unit_price",
            ),
            (
                [
                    {"description": "ok", "quantity": 1, "unit_price": "1"},
                    {"description": "x", "quantity": 100_000, "unit_price": TOP_PRICE},
                ],
                "1.unit_price",
            ),
            ([{"description": "x", "quantity": 46_117, "unit_price": TOP_PRICE}] * 2, ""),
            ([{"description": "x", "quantity": 1_000_001, "unit_price": "1"}], "0.quantity"),
        ],
    )
    async def test_create_and_patch_refuse_what_the_column_cannot_hold(
        self, orders, contacts, lines, field
    ):
        contact = await new_contact(contacts)
        expected = f"body.lines.{field}".rstrip(".")
        created = await orders.post(BASE, json={"contact_id": contact["id"], "lines": lines})
        problem = assert_problem(created, 422, "VALIDATION_FAILED")
        assert [error["field"] for error in problem["errors"]] == [expected], problem
        order = await new_order(orders, contact["id"])
        patched = await orders.patch(f"{BASE}/{order['id']}", json={"lines": lines})
        problem = assert_problem(patched, 422, "VALIDATION_FAILED")
        assert [error["field"] for error in problem["errors"]] == [expected], problem

    async def test_the_largest_storable_total_is_stored_exactly(self, orders, contacts):
        contact = await new_contact(contacts)
        lines = [
            {"description": "x", "quantity": 92_233, "unit_price": TOP_PRICE},
            {"description": "y", "quantity": 1, "unit_price": "720368548680.40"},
        ]
        order = await new_order(orders, contact["id"], lines=lines)
        assert order["lines"][0]["line_total"] == "92232999999999077.67"
        assert order["total"] == MAX_STORED
        stored = (await orders.get(f"{BASE}/{order['id']}")).json()
        assert stored["total"] == order["total"]
        assert (await orders.get(BASE, params={"sort_by": "total"})).status_code == 200


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    lines=st.lists(st.one_of(ANY_LINE, LARGE_LINE), max_size=3),
    copies=st.sampled_from([1, 2, 500]),
)
async def test_large_amounts_never_make_a_5xx(orders, contacts, lines, copies):
    """Whatever the numbers, create and replace answer alike, and never with a 5xx."""
    contact = await new_contact(contacts)
    lines = lines * copies
    created = await orders.post(BASE, json={"contact_id": contact["id"], "lines": lines})
    assert created.status_code in (201, 422), created.text
    order = await new_order(orders, contact["id"])
    patched = await orders.patch(f"{BASE}/{order['id']}", json={"lines": lines})
    assert patched.status_code in (200, 422), patched.text
    assert (created.status_code == 201) == (patched.status_code == 200)


class TestContactValidation:
    async def test_unknown_contact(self, orders):
        missing = str(uuid.uuid4())
        problem = assert_problem(
            await orders.post(BASE, json={"contact_id": missing}), 422, "CONTACT_INVALID"
        )
        assert "does not exist" in problem["detail"]
        assert problem["errors"][0]["field"] == "body.contact_id"

    async def test_inactive_contact(self, orders, contacts):
        contact = await new_contact(contacts, is_active=False)
        problem = assert_problem(
            await orders.post(BASE, json={"contact_id": contact["id"]}), 422, "CONTACT_INVALID"
        )
        assert "inactive" in problem["detail"]

    async def test_deleted_contact(self, orders, contacts):
        contact = await new_contact(contacts)
        await contacts.delete(f"/api/v1/contacts/{contact['id']}")
        problem = assert_problem(
            await orders.post(BASE, json={"contact_id": contact["id"]}), 422, "CONTACT_INVALID"
        )
        assert "deleted" in problem["detail"]


class TestPartValidation:
    async def test_unknown_or_deleted_part_is_422(self, orders, contacts, inventory_service):
        contact = await new_contact(contacts)
        lines = [
            {"description": "ok", "quantity": 1, "unit_price": "1"},
            {"description": "?", "part_id": "QQQQ", "quantity": 1, "unit_price": "1"},
        ]
        problem = assert_problem(
            await orders.post(BASE, json={"contact_id": contact["id"], "lines": lines}),
            422,
            "PART_INVALID",
        )
        assert "QQQQ" in problem["detail"]
        assert problem["errors"][0]["field"] == "body.lines.1.part_id"
        async with inventory_service.client() as inventory:
            await inventory.delete("/api/v1/parts/BZQM")
        assert_problem(
            await orders.post(BASE, json={"contact_id": contact["id"], "lines": LINES}),
            422,
            "PART_INVALID",
        )

    async def test_patch_and_put_check_the_lines_parts(self, orders, contacts):
        contact = await new_contact(contacts)
        order = await new_order(orders, contact["id"], lines=LINES)
        bad = [{"description": "x", "part_id": "ZZZZ", "quantity": 1, "unit_price": "1"}]
        patched = await orders.patch(f"{BASE}/{order['id']}", json={"lines": bad})
        assert_problem(patched, 422, "PART_INVALID")
        replaced = await orders.put(
            f"{BASE}/{order['id']}", json={"contact_id": contact["id"], "lines": bad}
        )
        assert_problem(replaced, 422, "PART_INVALID")
        assert (await orders.get(f"{BASE}/{order['id']}")).json()["version"] == 1


async def test_inventory_down_is_503_only_for_lines_with_parts(tmp_path, contacts_service):
    url = f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}"
    grpc_server = contacts_service.runtime.grpc_server
    settings = settings_for(
        SERVICES["orders"],
        tmp_path,
        url,
        contacts_grpc_target=f"127.0.0.1:{grpc_server.port}",
        inventory_grpc_target=f"127.0.0.1:{free_port()}",
    )
    app = create_app(SERVICES["orders"], settings)
    trust_test_key(app.state.runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t", headers=bearer()) as client,
        contacts_service.client() as contacts,
    ):
        contact = await new_contact(contacts)
        started = time.perf_counter()
        response = await client.post(BASE, json={"contact_id": contact["id"], "lines": LINES})
        assert time.perf_counter() - started < 2
        assert_problem(response, 503, "INVENTORY_UNAVAILABLE")
        no_parts = [{"description": "labour", "quantity": 1, "unit_price": "50"}]
        created = await client.post(BASE, json={"contact_id": contact["id"], "lines": no_parts})
        assert created.status_code == 201, created.text


async def test_contacts_down_is_503_within_two_seconds(tmp_path):
    """Nothing listens where orders expects contacts: a clear 503, never a 500 or a hang."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}"
    settings = settings_for(
        SERVICES["orders"], tmp_path, url, contacts_grpc_target=f"127.0.0.1:{free_port()}"
    )
    app = create_app(SERVICES["orders"], settings)
    trust_test_key(app.state.runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t", headers=bearer()) as client,
    ):
        started = time.perf_counter()
        response = await client.post(BASE, json={"contact_id": str(uuid.uuid4()), "lines": LINES})
        elapsed = time.perf_counter() - started
        problem = assert_problem(response, 503, "CONTACTS_UNAVAILABLE")
        assert response.headers["retry-after"]
        assert elapsed < 2, elapsed
        assert "127.0.0.1" not in problem["detail"]
        assert (await client.get(BASE)).json()["total"] == 0  # nothing half-created


class TestStatusMachine:
    async def test_happy_path_sets_timestamps(self, orders, contacts):
        order = await new_order(orders, (await new_contact(contacts))["id"])
        url = f"{BASE}/{order['id']}/transition"
        for target, stamp in [
            ("confirmed", "confirmed_at"),
            ("fulfilled", "fulfilled_at"),
            ("closed", "closed_at"),
        ]:
            response = await orders.post(url, json={"to": target})
            assert response.status_code == 200, response.text
            assert response.json()["status"] == target and response.json()[stamp] is not None
        assert response.json()["version"] == 4

    async def test_invalid_transition_lists_allowed_targets(self, orders, contacts):
        order = await new_order(orders, (await new_contact(contacts))["id"])
        response = await orders.post(f"{BASE}/{order['id']}/transition", json={"to": "closed"})
        problem = assert_problem(response, 409, "INVALID_TRANSITION")
        assert problem["allowed"] == ["confirmed", "cancelled"]
        assert problem["current"] == "draft" and problem["target"] == "closed"

    async def test_cancel_is_final(self, orders, contacts):
        order = await new_order(orders, (await new_contact(contacts))["id"])
        url = f"{BASE}/{order['id']}/transition"
        await orders.post(url, json={"to": "confirmed"})
        cancelled = await orders.post(url, json={"to": "cancelled"})
        assert cancelled.json()["cancelled_at"] is not None
        problem = assert_problem(
            await orders.post(url, json={"to": "draft"}), 409, "INVALID_TRANSITION"
        )
        assert problem["allowed"] == []

    async def test_unknown_status_is_422_and_stale_version_412(self, orders, contacts):
        order = await new_order(orders, (await new_contact(contacts))["id"])
        url = f"{BASE}/{order['id']}/transition"
        assert_problem(await orders.post(url, json={"to": "shipped"}), 422, "VALIDATION_FAILED")
        response = await orders.post(url, json={"to": "confirmed"}, headers={"If-Match": '"9"'})
        assert_problem(response, 412, "VERSION_MISMATCH")


class TestLines:
    async def test_replaced_as_a_whole_in_draft(self, orders, contacts):
        order = await new_order(orders, (await new_contact(contacts))["id"], lines=LINES)
        response = await orders.patch(
            f"{BASE}/{order['id']}",
            json={"lines": [{"description": "Only", "quantity": 2, "unit_price": "5.50"}]},
            headers={"If-Match": '"1"'},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert [line["description"] for line in body["lines"]] == ["Only"]
        assert body["total"] == "11.00" and body["version"] == 2
        assert response.headers["etag"] == '"2"'

    async def test_not_after_confirmation(self, orders, contacts):
        order = await new_order(orders, (await new_contact(contacts))["id"], lines=LINES)
        await orders.post(f"{BASE}/{order['id']}/transition", json={"to": "confirmed"})
        response = await orders.patch(f"{BASE}/{order['id']}", json={"lines": []})
        assert_problem(response, 409, "ORDER_NOT_DRAFT")
        notes = await orders.patch(f"{BASE}/{order['id']}", json={"notes": "ship Friday"})
        assert notes.status_code == 200 and notes.json()["total"] == "60.97"

    async def test_null_lines_is_422(self, orders, contacts):
        order = await new_order(orders, (await new_contact(contacts))["id"])
        assert_problem(
            await orders.patch(f"{BASE}/{order['id']}", json={"lines": None}),
            422,
            "VALIDATION_FAILED",
        )


class TestReplace:
    async def test_put_replaces_a_draft_and_resets_what_it_leaves_out(self, orders, contacts):
        ada = await new_contact(contacts)
        order = await new_order(orders, ada["id"], lines=LINES, currency="USD", notes="rush")
        url = f"{BASE}/{order['id']}"
        response = await orders.put(
            url,
            json={
                "contact_id": ada["id"],
                "lines": [{"description": "One", "quantity": 1, "unit_price": 2}],
            },
            headers={"If-Match": '"1"'},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert [line["description"] for line in body["lines"]] == ["One"]
        assert body["total"] == "2.00" and body["currency"] == "EUR" and body["notes"] is None
        assert body["code"] == order["code"] and body["customer_name"] == "Ada Lovelace"
        assert body["version"] == 2 and response.headers["etag"] == '"2"'
        assert (await orders.get(url)).json() == body

    async def test_a_new_customer_is_validated_like_on_create(self, orders, contacts):
        ada = await new_contact(contacts)
        order = await new_order(orders, ada["id"])
        url = f"{BASE}/{order['id']}"
        inactive = await new_contact(contacts, "Idle", is_active=False)
        problem = assert_problem(
            await orders.put(url, json={"contact_id": inactive["id"]}), 422, "CONTACT_INVALID"
        )
        assert "inactive" in problem["detail"]
        grace = await new_contact(contacts, "Grace Hopper")
        moved = await orders.put(url, json={"contact_id": grace["id"]})
        assert moved.status_code == 200, moved.text
        assert moved.json()["contact_id"] == grace["id"]
        assert moved.json()["customer_name"] in (None, "Grace Hopper")  # the read model may lag

    async def test_only_while_draft(self, orders, contacts):
        ada = await new_contact(contacts)
        order = await new_order(orders, ada["id"], lines=LINES)
        url = f"{BASE}/{order['id']}"
        await orders.post(f"{url}/transition", json={"to": "confirmed"})
        assert_problem(
            await orders.put(url, json={"contact_id": ada["id"], "lines": LINES}),
            409,
            "ORDER_NOT_DRAFT",
        )
        assert (await orders.get(url)).json()["version"] == 2

    async def test_a_customer_changed_meanwhile_is_a_conflict(
        self, orders, contacts, orders_service, monkeypatch
    ):
        """The customer is validated only when it changes; if another writer changed it
        after this PUT looked, the one sent was never validated: 409, nothing written."""
        ada, grace = await new_contact(contacts), await new_contact(contacts, "Grace Hopper")
        order = await new_order(orders, ada["id"])
        read_detached = ResourceKind.read_detached

        async def then_another_writer(self, uow, item_id, **options):
            seen = await read_detached(self, uow, item_id, **options)
            async with orders_service.runtime.engine.begin() as connection:
                await connection.execute(
                    update(Order)
                    .where(Order.id == item_id)
                    .values(contact_id=uuid.UUID(grace["id"]), version=Order.version + 1)
                )
            return seen

        monkeypatch.setattr(ResourceKind, "read_detached", then_another_writer)
        url = f"{BASE}/{order['id']}"
        response = await orders.put(url, json={"contact_id": ada["id"], "notes": "mine"})
        assert_problem(response, 409, "CONCURRENT_MODIFICATION")
        monkeypatch.undo()
        current = (await orders.get(url)).json()
        assert current["contact_id"] == grace["id"] and current["notes"] is None

    async def test_stale_version_missing_contact_and_unknown_order(self, orders, contacts):
        ada = await new_contact(contacts)
        order = await new_order(orders, ada["id"])
        url = f"{BASE}/{order['id']}"
        stale = await orders.put(url, json={"contact_id": ada["id"]}, headers={"If-Match": '"7"'})
        assert_problem(stale, 412, "VERSION_MISMATCH")
        assert_problem(await orders.put(url, json={"notes": "x"}), 422, "VALIDATION_FAILED")
        assert_problem(
            await orders.put(f"{BASE}/{uuid.uuid4()}", json={"contact_id": ada["id"]}),
            404,
            "ORDER_NOT_FOUND",
        )


class TestList:
    async def test_filters_search_sort_and_customer_names(self, orders, contacts):
        ada = await new_contact(contacts, "Ada Lovelace")
        bob = await new_contact(contacts, "Bob Noyce")
        small = await new_order(
            orders, ada["id"], lines=[{"description": "a", "quantity": 1, "unit_price": "1"}]
        )
        big = await new_order(
            orders, bob["id"], lines=[{"description": "b", "quantity": 1, "unit_price": "100"}]
        )
        await orders.post(f"{BASE}/{big['id']}/transition", json={"to": "confirmed"})

        async def names_known() -> bool:
            items = (await orders.get(BASE)).json()["items"]
            return all(item["customer_name"] for item in items)

        await eventually(names_known)
        by_total = (
            await orders.get(BASE, params={"sort_by": "total", "sort_order": "desc"})
        ).json()
        assert [item["id"] for item in by_total["items"]] == [big["id"], small["id"]]
        confirmed = (await orders.get(BASE, params={"status": "confirmed"})).json()
        assert [item["id"] for item in confirmed["items"]] == [big["id"]]
        assert confirmed["total"] == 1 and confirmed["total_exact"] is True
        of_ada = (await orders.get(BASE, params={"contact_id": ada["id"]})).json()
        assert [item["customer_name"] for item in of_ada["items"]] == ["Ada Lovelace"]
        by_name = (await orders.get(BASE, params={"search": "noyce"})).json()
        assert [item["id"] for item in by_name["items"]] == [big["id"]]
        by_code = (await orders.get(BASE, params={"search": small["code"]})).json()
        assert [item["id"] for item in by_code["items"]] == [small["id"]]
        assert_problem(await orders.get(BASE, params={"status": "lost"}), 422, "VALIDATION_FAILED")
        assert_problem(
            await orders.get(BASE, params={"sort_by": "notes"}), 422, "VALIDATION_FAILED"
        )

    async def test_renamed_contact_shows_in_list(self, orders, contacts):
        contact = await new_contact(contacts, "Old Name")
        await new_order(orders, contact["id"])
        await contacts.patch(f"/api/v1/contacts/{contact['id']}", json={"name": "New Name"})

        async def renamed() -> bool:
            return (await orders.get(BASE)).json()["items"][0]["customer_name"] == "New Name"

        await eventually(renamed)


class TestDeletion:
    async def test_soft_delete_restore_and_purge_with_audit(self, orders, contacts):
        order = await new_order(orders, (await new_contact(contacts))["id"])
        url = f"{BASE}/{order['id']}"
        deleted = await orders.delete(url)
        assert deleted.status_code == 200 and deleted.json()["is_deleted"] is True
        assert_problem(await orders.get(url), 404, "ORDER_NOT_FOUND")
        assert_problem(await orders.delete(url), 409, "ORDER_ALREADY_DELETED")
        restored = await orders.post(f"{url}/restore")
        assert restored.json()["is_deleted"] is False and restored.json()["version"] == 3
        purged = await orders.delete(f"{url}/permanent")
        assert purged.json()["status"] == "completed"
        audits = (await orders.get("/api/v1/deletion-audits")).json()["items"]
        assert audits[0]["item_code"] == order["code"] and audits[0]["item_type"] == "order"
        assert_problem(
            await orders.get(url, params={"include_deleted": True}), 404, "ORDER_NOT_FOUND"
        )


async def test_concurrent_creates_get_distinct_gap_free_codes(orders, contacts):
    contact = await new_contact(contacts)
    responses = await asyncio.gather(
        *(orders.post(BASE, json={"contact_id": contact["id"]}) for _ in range(30))
    )
    assert {r.status_code for r in responses} == {201}
    numbers = sorted(int(r.json()["code"].rsplit("-", 1)[1]) for r in responses)
    assert numbers == list(range(1, 31))
