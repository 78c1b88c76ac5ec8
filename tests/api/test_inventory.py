"""Inventory's REST API (§11 inventory) on both database backends: parts, boxes, stock,
projects and builds, placement, search and the CSV import."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
from sqlalchemy import select

from lkern.platform.events.outbox import OutboxMessage
from tests.api.test_contacts import assert_problem
from tests.conftest import ServiceUnderTest

PARTS = "/api/v1/parts"
BOXES = "/api/v1/boxes"
PROJECTS = "/api/v1/projects"
PDF = b"%PDF-1.7\n" + b"0" * 2000


async def new_part(inventory: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"description": "Resistor 10k 0603", **fields}
    response = await inventory.post(PARTS, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def new_box(inventory: httpx.AsyncClient, capacity: int = 10, **fields: Any) -> int:
    response = await inventory.post(BOXES, json={"capacity": capacity, **fields})
    assert response.status_code == 201, response.text
    return int(response.json()["box_no"])


async def stock(
    inventory: httpx.AsyncClient, part_id: str, action: str, **body: Any
) -> httpx.Response:
    return await inventory.post(f"{PARTS}/{part_id}/stock/{action}", json=body)


async def put(inventory: httpx.AsyncClient, part_id: str, box: int, loc: int, n: int) -> dict:
    answer = await stock(inventory, part_id, "add", box_no=box, loc_no=loc, quantity=n)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def events(service: ServiceUnderTest, event_type: str) -> list[dict[str, Any]]:
    async with service.runtime.sessions() as session:
        rows = await session.scalars(
            select(OutboxMessage.payload)
            .where(OutboxMessage.topic == event_type)
            .order_by(OutboxMessage.seq)
        )
        return [json.loads(payload)["data"] for payload in rows]


class TestParts:
    async def test_create_read_patch_put_with_generated_id(self, inventory, inventory_service):
        answer = await inventory.post(
            PARTS,
            json={
                "description": " NE555 timer ",
                "manufacturer": "TI",
                "manufacturer_code": "NE555P",
                "category": "ics",
                "tags": ["timer", "dip", "timer"],
                "package": "DIP-8",
                "attributes": {"supply": "4.5-16V"},
                "seller": "Mouser",
                "seller_link": "https://mouser.com/ne555",
            },
        )
        assert answer.status_code == 201, answer.text
        part = answer.json()
        assert re.fullmatch(r"[A-Z]{4}", part["id"])
        assert answer.headers["location"] == f"{PARTS}/{part['id']}"
        assert answer.headers["etag"] == '"1"'
        assert part["description"] == "NE555 timer" and part["tags"] == ["timer", "dip"]
        assert part["total_quantity"] == 0 and part["locations"] == [] and part["documents"] == []
        got = await inventory.get(f"{PARTS}/{part['id']}")
        assert got.status_code == 200 and got.json()["manufacturer_code"] == "NE555P"

        patched = await inventory.patch(
            f"{PARTS}/{part['id']}", json={"category": None}, headers={"If-Match": '"1"'}
        )
        assert patched.status_code == 200 and patched.json()["category"] is None
        assert patched.headers["etag"] == '"2"'
        stale = await inventory.patch(
            f"{PARTS}/{part['id']}", json={"package": "SO-8"}, headers={"If-Match": '"1"'}
        )
        assert_problem(stale, 412, "VERSION_MISMATCH")
        replaced = await inventory.put(f"{PARTS}/{part['id']}", json={"description": "555"})
        assert replaced.status_code == 200
        body = replaced.json()
        assert body["manufacturer"] is None and body["tags"] == [] and body["version"] == 3
        updated = await events(inventory_service, "lkern.inventory.part_updated")
        assert updated[0]["previous"] == {"category": "ics"} and updated[0]["id"] == part["id"]
        created = await events(inventory_service, "lkern.inventory.part_created")
        assert created[0]["id"] == part["id"]

    async def test_bad_ids_and_fields(self, inventory):
        assert_problem(await inventory.get(f"{PARTS}/ZZZZ"), 404, "PART_NOT_FOUND")
        assert (await inventory.get(f"{PARTS}/abcd")).status_code == 404
        bad = await inventory.post(PARTS, json={"description": "", "seller_link": "nope"})
        body = assert_problem(bad, 422, "VALIDATION_FAILED")
        assert {error["field"] for error in body["errors"]} >= {
            "body.description",
            "body.seller_link",
        }

    async def test_list_filters_sort_and_deleted(self, inventory):
        box = await new_box(inventory)
        a = await new_part(inventory, description="alpha", category="caps", tags=["smd"])
        b = await new_part(inventory, description="beta", category="caps")
        c = await new_part(inventory, description="gamma", category="ics", tags=["smd", "x"])
        await put(inventory, b["id"], box, 1, 5)
        await put(inventory, b["id"], box, 2, 7)
        await put(inventory, c["id"], box, 3, 1)

        async def ids(**params: Any) -> list[str]:
            answer = await inventory.get(PARTS, params=params)
            assert answer.status_code == 200, answer.text
            return [item["id"] for item in answer.json()["items"]]

        assert await ids(category="caps", sort_by="description") == [a["id"], b["id"]]
        assert set(await ids(tag="smd")) == {a["id"], c["id"]}
        assert await ids(in_stock="true", sort_by="total_quantity", sort_order="desc") == [
            b["id"],
            c["id"],
        ]
        assert await ids(in_stock="false") == [a["id"]]
        listed = (await inventory.get(PARTS, params={"in_stock": "true", "limit": 1})).json()
        assert listed["total"] == 2 and listed["has_more"] is True
        assert listed["items"][0]["total_quantity"] in (12, 1)
        assert (await inventory.get(PARTS, params={"sort_by": "nope"})).status_code == 422
        assert (await inventory.delete(f"{PARTS}/{a['id']}")).json()["is_deleted"] is True
        assert a["id"] not in await ids()
        assert a["id"] in await ids(include_deleted="true")
        # Its history is hidden with it (§3), unless asked for.
        history = f"{PARTS}/{a['id']}/history"
        assert (await inventory.get(history)).status_code == 404
        kept = await inventory.get(history, params={"include_deleted": "true"})
        assert kept.status_code == 200 and kept.json()["total"] == 0
        assert (await inventory.post(f"{PARTS}/{a['id']}/restore")).status_code == 200
        assert (await inventory.get(history)).status_code == 200
        assert a["id"] in await ids()

    async def test_search_over_every_named_field(self, inventory):
        first = await new_part(
            inventory,
            description="Ceramic capacitor",
            manufacturer="Murata",
            manufacturer_code="GRM188R71H104",
            category="capacitors",
            tags=["decoupling"],
            attributes={"voltage": "50V", "dielectric": "X7R"},
        )
        other = await new_part(inventory, description="Schottky diode", manufacturer="Vishay")
        document = await inventory.post(
            f"{PARTS}/{other['id']}/documents",
            files={"file": ("BAT54-datasheet.pdf", PDF, "application/pdf")},
        )
        assert document.status_code == 201, document.text

        async def found(text: str) -> list[str]:
            answer = await inventory.get(PARTS, params={"search": text})
            assert answer.status_code == 200, answer.text
            return [item["id"] for item in answer.json()["items"]]

        for text in ("ceramic", "MURATA", "r71h1", "capacitor", "DECOUP", "x7r", "50v"):
            assert await found(text) == [first["id"]], text
        assert await found(first["id"].lower()) == [first["id"]]
        assert await found("bat54") == [other["id"]]
        assert await found("di") == [other["id"]]  # two characters: still a substring search
        assert await found("%%") == [] and await found("__") == []
        await inventory.patch(f"{PARTS}/{other['id']}", json={"description": "Zener"})
        assert await found("schottky") == []
        assert await found("zener") == [other["id"]]
        assert (await inventory.get(PARTS, params={"search": "x"})).status_code == 422

    async def test_permanent_delete_refused_while_in_stock(self, inventory, inventory_service):
        box = await new_box(inventory)
        part = await new_part(inventory)
        await put(inventory, part["id"], box, 1, 3)
        refused = await inventory.delete(f"{PARTS}/{part['id']}/permanent")
        assert_problem(refused, 409, "PART_HAS_STOCK")
        await stock(inventory, part["id"], "remove", box_no=box, loc_no=1, quantity=3)
        gone = await inventory.delete(f"{PARTS}/{part['id']}/permanent")
        assert gone.status_code == 200 and gone.json()["status"] == "completed"
        assert (await inventory.get(f"{PARTS}/{part['id']}")).status_code == 404
        deleted = await events(inventory_service, "lkern.inventory.part_permanently_deleted")
        assert deleted[0]["id"] == part["id"]
        audits = (await inventory.get("/api/v1/deletion-audits")).json()["items"]
        assert audits[0]["item_code"] == part["id"] and audits[0]["item_type"] == "part"

    async def test_documents(self, inventory):
        part = await new_part(inventory)
        upload = await inventory.post(
            f"{PARTS}/{part['id']}/documents", files={"file": ("ds.pdf", PDF, "application/pdf")}
        )
        assert upload.status_code == 201, upload.text
        file_id = upload.json()["file_id"]
        assert upload.headers["location"] == f"{PARTS}/{part['id']}/documents/{file_id}"
        got = (await inventory.get(f"{PARTS}/{part['id']}")).json()
        assert [d["filename"] for d in got["documents"]] == ["ds.pdf"]
        link = await inventory.get(
            f"{PARTS}/{part['id']}/documents/{file_id}", params={"redirect": "false"}
        )
        assert link.status_code == 200 and "url" in link.json()
        removed = await inventory.delete(f"{PARTS}/{part['id']}/documents/{file_id}")
        assert removed.status_code == 200 and removed.json()["documents"] == []


class TestBoxes:
    async def test_numbers_locations_and_occupied(self, inventory):
        first = await new_box(inventory, 3, description="resistors")
        second = await new_box(inventory, 2)
        assert (first, second) == (1, 2)
        part = await new_part(inventory, description="LED red")
        await put(inventory, part["id"], first, 2, 4)
        locations = (await inventory.get(f"{BOXES}/{first}/locations")).json()
        assert locations == [
            {"loc_no": 1, "part_id": None, "description": None, "quantity": 0},
            {"loc_no": 2, "part_id": part["id"], "description": "LED red", "quantity": 4},
            {"loc_no": 3, "part_id": None, "description": None, "quantity": 0},
        ]
        listed = (await inventory.get(BOXES)).json()["items"]
        assert listed[0]["used"] == 1 and listed[0]["utilisation"] == round(1 / 3, 4)
        shrink = await inventory.patch(f"{BOXES}/{first}", json={"capacity": 1})
        assert_problem(shrink, 409, "BOX_OCCUPIED")
        grown = await inventory.patch(f"{BOXES}/{first}", json={"capacity": 2})
        assert grown.status_code == 200 and grown.json()["capacity"] == 2
        assert_problem(await inventory.delete(f"{BOXES}/{first}"), 409, "BOX_OCCUPIED")
        assert (await inventory.delete(f"{BOXES}/{second}")).status_code == 204
        assert_problem(await inventory.get(f"{BOXES}/{second}"), 404, "BOX_NOT_FOUND")
        bad = await inventory.post(BOXES, json={"capacity": 1001})
        assert_problem(bad, 422, "VALIDATION_FAILED")


class TestStock:
    async def test_add_remove_move_history_and_events(self, inventory, inventory_service):
        box = await new_box(inventory, 5)
        part = await new_part(inventory)
        other = await new_part(inventory, description="other")
        after = await put(inventory, part["id"], box, 1, 10)
        assert after["total_quantity"] == 10 and after["version"] == 2
        after = await put(inventory, part["id"], box, 1, 5)
        assert after["locations"] == [{"box_no": box, "loc_no": 1, "quantity": 15}]
        taken = await stock(inventory, other["id"], "add", box_no=box, loc_no=1, quantity=1)
        assert_problem(taken, 409, "LOCATION_OCCUPIED")
        too_many = await stock(inventory, part["id"], "remove", box_no=box, loc_no=1, quantity=16)
        body = assert_problem(too_many, 409, "INSUFFICIENT_STOCK")
        assert body["shortfalls"][0]["shortfall"] == 1
        moved = await stock(
            inventory,
            part["id"],
            "move",
            from_box_no=box,
            from_loc_no=1,
            to_box_no=box,
            to_loc_no=4,
            quantity=15,
            reason="tidy",
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["locations"] == [{"box_no": box, "loc_no": 4, "quantity": 15}]
        # Location 1 is free again: another part may go there.
        assert (
            await stock(inventory, other["id"], "add", box_no=box, loc_no=1, quantity=2)
        ).status_code == 200
        out = await stock(inventory, part["id"], "remove", box_no=box, loc_no=4, quantity=5)
        assert out.json()["total_quantity"] == 10
        beyond = await stock(inventory, part["id"], "add", box_no=box, loc_no=6, quantity=1)
        assert_problem(beyond, 422, "LOCATION_INVALID")
        nobox = await stock(inventory, part["id"], "add", box_no=99, loc_no=1, quantity=1)
        assert_problem(nobox, 422, "BOX_NOT_FOUND")
        zero = await stock(inventory, part["id"], "add", box_no=box, loc_no=1, quantity=0)
        assert_problem(zero, 422, "VALIDATION_FAILED")

        history = (await inventory.get(f"{PARTS}/{part['id']}/history")).json()
        assert [(h["kind"], h["delta"], h["loc_no"]) for h in history["items"]] == [
            ("remove", -5, 4),
            ("move_in", 15, 4),
            ("move_out", -15, 1),
            ("add", 5, 1),
            ("add", 10, 1),
        ]
        assert history["items"][1]["reason"] == "tidy" and history["items"][0]["user_id"]
        changed = await events(inventory_service, "lkern.inventory.stock_changed")
        mine = [e for e in changed if e["part_id"] == part["id"]]
        assert [(e["delta"], e["quantity"], e["total_quantity"]) for e in mine] == [
            (10, 10, 10),
            (5, 15, 15),
            (-15, 0, 15),
            (15, 15, 15),
            (-5, 10, 10),
        ]

    async def test_if_match_on_stock_actions(self, inventory):
        box = await new_box(inventory, 3)
        part = await new_part(inventory)
        other = await new_part(inventory, description="other")
        await put(inventory, other["id"], box, 1, 1)
        # If-Match is judged first: a stale version is a 412 even where a 409 would follow.
        stale = await inventory.post(
            f"{PARTS}/{part['id']}/stock/add",
            json={"box_no": box, "loc_no": 1, "quantity": 1},
            headers={"If-Match": '"7"'},
        )
        assert_problem(stale, 412, "VERSION_MISMATCH")
        matched = await inventory.post(
            f"{PARTS}/{part['id']}/stock/add",
            json={"box_no": box, "loc_no": 2, "quantity": 1},
            headers={"If-Match": '"1"'},
        )
        assert matched.status_code == 200 and matched.headers["etag"] == '"2"'

    async def test_concurrent_removals_never_oversell(self, inventory):
        box = await new_box(inventory)
        part = await new_part(inventory)
        await put(inventory, part["id"], box, 1, 10)
        answers = await asyncio.gather(
            *(
                stock(inventory, part["id"], "remove", box_no=box, loc_no=1, quantity=1)
                for _ in range(20)
            )
        )
        assert sorted(a.status_code for a in answers) == [200] * 10 + [409] * 10
        after = (await inventory.get(f"{PARTS}/{part['id']}")).json()
        assert after["total_quantity"] == 0 and after["locations"] == []
        history = (await inventory.get(f"{PARTS}/{part['id']}/history")).json()
        assert history["total"] == 11  # the add and ten removals

    async def test_concurrent_moves_into_one_free_location(self, inventory):
        box = await new_box(inventory, 5)
        parts = [await new_part(inventory, description=f"p{n}") for n in range(3)]
        for n, part in enumerate(parts):
            await put(inventory, part["id"], box, n + 1, 2)
        answers = await asyncio.gather(
            *(
                stock(
                    inventory,
                    part["id"],
                    "move",
                    from_box_no=box,
                    from_loc_no=n + 1,
                    to_box_no=box,
                    to_loc_no=5,
                    quantity=2,
                )
                for n, part in enumerate(parts)
            )
        )
        assert sorted(a.status_code for a in answers) == [200, 409, 409]
        assert {a.json()["code"] for a in answers if a.status_code == 409} == {"LOCATION_OCCUPIED"}


class TestProjects:
    async def test_buildability_and_atomic_build(self, inventory, inventory_service):
        box = await new_box(inventory, 10)
        r = await new_part(inventory, description="resistor")
        c = await new_part(inventory, description="capacitor")
        await put(inventory, r["id"], box, 1, 7)
        await put(inventory, r["id"], box, 2, 3)
        await put(inventory, c["id"], box, 3, 5)
        created = await inventory.post(
            PROJECTS,
            json={
                "name": "Blinky",
                "requirements": [
                    {"part_id": r["id"], "quantity": 4},
                    {"part_id": c["id"], "quantity": 2},
                ],
            },
        )
        assert created.status_code == 201, created.text
        project = created.json()
        can = (await inventory.get(f"{PROJECTS}/{project['id']}/buildability")).json()
        assert can["max_buildable"] == 2 and can["can_build"] is True
        three = (
            await inventory.get(f"{PROJECTS}/{project['id']}/buildability", params={"builds": 3})
        ).json()
        assert three["can_build"] is False
        assert {p["part_id"]: p["shortfall"] for p in three["parts"]} == {r["id"]: 2, c["id"]: 1}
        refused = await inventory.post(f"{PROJECTS}/{project['id']}/build", json={"builds": 3})
        body = assert_problem(refused, 409, "INSUFFICIENT_STOCK")
        assert {s["part_id"] for s in body["shortfalls"]} == {r["id"], c["id"]}
        assert (await inventory.get(f"{PARTS}/{r['id']}")).json()["total_quantity"] == 10

        built = await inventory.post(f"{PROJECTS}/{project['id']}/build", json={"builds": 1})
        assert built.status_code == 200, built.text
        # Smallest location first: all 3 of location 2, then 1 of location 1.
        after = (await inventory.get(f"{PARTS}/{r['id']}")).json()
        assert after["locations"] == [{"box_no": box, "loc_no": 1, "quantity": 6}]
        history = (await inventory.get(f"{PARTS}/{r['id']}/history")).json()["items"]
        assert {(h["delta"], h["loc_no"]) for h in history[:2]} == {(-3, 2), (-1, 1)}
        assert history[0]["reason"] == "build Blinky ×1"  # noqa: RUF001
        built_events = await events(inventory_service, "lkern.inventory.project_built")
        assert built_events[0]["builds"] == 1 and built_events[0]["name"] == "Blinky"

        duplicate = await inventory.post(
            PROJECTS,
            json={
                "name": "x",
                "requirements": [
                    {"part_id": r["id"], "quantity": 1},
                    {"part_id": r["id"], "quantity": 2},
                ],
            },
        )
        assert_problem(duplicate, 422, "VALIDATION_FAILED")

    async def test_concurrent_builds_exactly_one_wins(self, inventory):
        box = await new_box(inventory, 10)
        part = await new_part(inventory)
        await put(inventory, part["id"], box, 1, 3)
        await put(inventory, part["id"], box, 2, 3)
        project = (
            await inventory.post(
                PROJECTS,
                json={"name": "P", "requirements": [{"part_id": part["id"], "quantity": 4}]},
            )
        ).json()
        answers = await asyncio.gather(
            *(inventory.post(f"{PROJECTS}/{project['id']}/build", json={}) for _ in range(4))
        )
        assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
        assert (await inventory.get(f"{PARTS}/{part['id']}")).json()["total_quantity"] == 2


class TestPlacement:
    async def test_each_rule_decides(self, inventory):
        own_box = await new_box(inventory, 5)  # holds the part at 3
        same_category = await new_box(inventory, 4)  # holds two other capacitors
        roomy = await new_box(inventory, 8)  # empty: most room
        full = await new_box(inventory, 1)  # full: never suggested
        part = await new_part(inventory, category="capacitors")
        cap1 = await new_part(inventory, category="capacitors")
        cap2 = await new_part(inventory, category="capacitors")
        other = await new_part(inventory, category="ics")
        await put(inventory, part["id"], own_box, 3, 1)
        await put(inventory, cap1["id"], same_category, 1, 1)
        await put(inventory, cap2["id"], same_category, 2, 1)
        await put(inventory, other["id"], full, 1, 1)
        answer = await inventory.get(f"{PARTS}/{part['id']}/placement", params={"limit": 50})
        assert answer.status_code == 200, answer.text
        suggestions = answer.json()["suggestions"]
        places = [(s["box_no"], s["loc_no"]) for s in suggestions]
        assert places[:2] in ([(own_box, 2), (own_box, 4)], [(own_box, 4), (own_box, 2)])
        assert places[2:4] == [(own_box, 1), (own_box, 5)]
        assert [s["rule"] for s in suggestions[4:6]] == ["same_category"] * 2
        assert {p for p in places[4:6]} == {(same_category, 3), (same_category, 4)}
        assert all(s["rule"] == "most_room" for s in suggestions[6:])
        assert {b for b, _ in places[6:]} == {roomy}
        assert full not in {b for b, _ in places}
        assert "next to" in suggestions[0]["reason"] and "capacitors" in suggestions[4]["reason"]
        assert "free" in suggestions[6]["reason"]
        limited = await inventory.get(f"{PARTS}/{part['id']}/placement")
        assert len(limited.json()["suggestions"]) == 5


class TestImport:
    async def test_all_or_nothing_with_row_errors(self, inventory):
        box = await new_box(inventory, 3)
        csv_bad = (
            "description,category,tags,attributes,box_no,loc_no,quantity\n"
            "ok part,caps,a;b,V=5,1,1,10\n"
            ",caps,,,,,\n"
            "another,ics,,bad,,,\n"
            "third,ics,,,1,9,1\n"
            "fourth,ics,,,1,1,2\n"
        )
        answer = await inventory.post(
            f"{PARTS}/import", content=csv_bad, headers={"Content-Type": "text/csv"}
        )
        body = assert_problem(answer, 422, "IMPORT_ROWS_INVALID")
        errors = [(e["row"], e["field"]) for e in body["rows"]]
        assert [row for row, _ in errors] == [3, 4, 5, 6]
        assert (await inventory.get(PARTS)).json()["total"] == 0

        good = "description,category,tags,box_no,loc_no,quantity\nr1,caps,a;b,1,1,10\nr2,ics,,,,\n"
        dry = await inventory.post(f"{PARTS}/import", params={"dry_run": "true"}, content=good)
        assert dry.status_code == 200 and dry.json()["created"] == [] and dry.json()["rows"] == 2
        assert (await inventory.get(PARTS)).json()["total"] == 0
        done = await inventory.post(f"{PARTS}/import", content=good)
        assert done.status_code == 200, done.text
        created = done.json()["created"]
        assert len(created) == 2
        first = (await inventory.get(f"{PARTS}/{created[0]}")).json()
        assert first["tags"] == ["a", "b"] and first["total_quantity"] == 10
        assert (await inventory.get(f"{BOXES}/{box}")).json()["used"] == 1
        unknown = await inventory.post(f"{PARTS}/import", content="description,colour\nx,red\n")
        assert_problem(unknown, 422, "CSV_UNKNOWN_COLUMNS")

    async def test_ten_thousand_rows(self, inventory):
        # Longer than the 1 MiB JSON limit: the import takes what an upload may.
        padding = "x" * 100
        rows = "".join(f"part {n} {padding},bulk,,n={n}\n" for n in range(10_000))
        assert len(rows) > 1024 * 1024
        answer = await inventory.post(
            f"{PARTS}/import", content="description,category,tags,attributes\n" + rows
        )
        assert answer.status_code == 200, answer.text
        assert len(set(answer.json()["created"])) == 10_000
        listed = (await inventory.get(PARTS, params={"category": "bulk", "limit": 1})).json()
        assert listed["total"] == 10_000
        found = (await inventory.get(PARTS, params={"search": "part 9999"})).json()
        assert [item["description"] for item in found["items"]] == [f"part 9999 {padding}"]


class TestMetrics:
    async def test_gauges(self, inventory):
        box = await new_box(inventory, 4)
        part = await new_part(inventory)
        await put(inventory, part["id"], box, 1, 7)
        text = (await inventory.get("/metrics")).text
        assert "lkern_inventory_parts 1.0" in text
        assert "lkern_inventory_total_quantity 7.0" in text
        assert "lkern_inventory_locations_free 3.0" in text
        assert f'lkern_inventory_box_utilisation{{box_no="{box}"}} 0.25' in text
        assert 'lkern_inventory_stock_changes_total{kind="add"}' in text

    async def test_every_path_counts_its_stock_changes(self, inventory):
        # Counted where every change passes (the service's history writer), once
        # committed: the import and the build too, and a refused change never.
        box = await new_box(inventory, 10)
        before = await stock_changes(inventory)
        csv = "description,box_no,loc_no,quantity\na,1,1,5\nb,1,2,4\nc,,,\n"
        assert (await inventory.post(f"{PARTS}/import", content=csv)).status_code == 200
        a, b = [
            item["id"]
            for item in (await inventory.get(PARTS, params={"sort_by": "description"})).json()[
                "items"
            ]
        ][:2]
        project = await inventory.post(
            PROJECTS,
            json={
                "name": "p",
                "requirements": [{"part_id": a, "quantity": 1}, {"part_id": b, "quantity": 1}],
            },
        )
        built = await inventory.post(f"{PROJECTS}/{project.json()['id']}/build", json={"builds": 2})
        assert built.status_code == 200, built.text
        await put(inventory, a, box, 1, 1)
        moved = await stock(
            inventory,
            a,
            "move",
            from_box_no=box,
            from_loc_no=1,
            to_box_no=box,
            to_loc_no=5,
            quantity=1,
        )
        assert moved.status_code == 200, moved.text
        too_many = await stock(inventory, b, "remove", box_no=box, loc_no=2, quantity=99)
        assert_problem(too_many, 409, "INSUFFICIENT_STOCK")
        after = await stock_changes(inventory)
        counted = {kind: after[kind] - before.get(kind, 0) for kind in after}
        # The refused removal counts nowhere.
        assert {kind: n for kind, n in counted.items() if n} == {
            "import": 2,
            "build": 2,
            "add": 1,
            "move_out": 1,
            "move_in": 1,
        }

    async def test_gauges_follow_every_change_without_counting_rows(self, inventory):
        box = await new_box(inventory, 4)
        spare = await new_box(inventory, 2)
        part = await new_part(inventory)
        csv = "description,box_no,loc_no,quantity\nx,1,2,5\ny,,,\n"
        assert (await inventory.post(f"{PARTS}/import", content=csv)).status_code == 200
        assert await gauges(inventory) == {
            "parts": 3,
            "total_quantity": 5,
            "boxes": 2,
            "used": 1,
            "free": 5,
        }
        await put(inventory, part["id"], box, 1, 7)
        assert (
            await stock(inventory, part["id"], "remove", box_no=box, loc_no=1, quantity=2)
        ).status_code == 200
        assert await gauges(inventory) == {
            "parts": 3,
            "total_quantity": 10,
            "boxes": 2,
            "used": 2,
            "free": 4,
        }
        # A part leaves the count when soft-deleted or hidden for good, comes back restored.
        other = await new_part(inventory, description="other")
        assert (await inventory.delete(f"{PARTS}/{other['id']}")).status_code == 200
        assert (await gauges(inventory))["parts"] == 3
        assert (await inventory.post(f"{PARTS}/{other['id']}/restore")).status_code == 200
        assert (await gauges(inventory))["parts"] == 4
        assert (await inventory.delete(f"{PARTS}/{other['id']}/permanent")).status_code == 200
        assert (await gauges(inventory))["parts"] == 3
        assert (await inventory.delete(f"{PARTS}/{part['id']}")).status_code == 200
        assert (await inventory.delete(f"{PARTS}/{part['id']}/permanent")).status_code == 409
        # The pieces a soft-deleted part holds are still in their box.
        assert await gauges(inventory) == {
            "parts": 2,
            "total_quantity": 10,
            "boxes": 2,
            "used": 2,
            "free": 4,
        }
        # Utilisation is per box; a deleted box's series goes.
        text = (await inventory.get("/metrics")).text
        assert f'lkern_inventory_box_utilisation{{box_no="{spare}"}} 0.0' in text
        assert (await inventory.delete(f"{BOXES}/{spare}")).status_code == 204
        text = (await inventory.get("/metrics")).text
        assert f'box_no="{spare}"' not in text
        assert f'lkern_inventory_box_utilisation{{box_no="{box}"}} 0.5' in text


async def stock_changes(inventory: httpx.AsyncClient) -> dict[str, float]:
    text = (await inventory.get("/metrics")).text
    found = re.findall(r'lkern_inventory_stock_changes_total\{kind="(\w+)"\} (\S+)', text)
    return {kind: float(value) for kind, value in found}


async def gauges(inventory: httpx.AsyncClient) -> dict[str, float]:
    text = (await inventory.get("/metrics")).text
    names = {
        "parts": "lkern_inventory_parts",
        "total_quantity": "lkern_inventory_total_quantity",
        "boxes": "lkern_inventory_boxes",
        "used": "lkern_inventory_locations_used",
        "free": "lkern_inventory_locations_free",
    }
    values = {}
    for key, name in names.items():
        found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        assert found is not None, name
        values[key] = float(found.group(1))
    return values


class TestFuzzFound:
    async def test_building_a_project_without_requirements(self, inventory):
        project = (await inventory.post(PROJECTS, json={"name": "empty"})).json()
        answer = await inventory.post(f"{PROJECTS}/{project['id']}/build", json={})
        assert_problem(answer, 409, "PROJECT_HAS_NO_REQUIREMENTS")

    async def test_stock_into_a_box_that_does_not_exist_is_422(self, inventory):
        part = await new_part(inventory)
        answer = await stock(inventory, part["id"], "add", box_no=7, loc_no=1, quantity=1)
        body = assert_problem(answer, 422, "BOX_NOT_FOUND")
        assert body["errors"][0]["field"] == "body.box_no"

    async def test_csv_problems_are_422_with_every_row(self, inventory):
        empty = await inventory.post(f"{PARTS}/import", content="")
        assert_problem(empty, 422, "CSV_EMPTY")
        bad = await inventory.post(f"{PARTS}/import", content="description\n\n,\n")
        body = assert_problem(bad, 422, "IMPORT_ROWS_INVALID")
        assert body["rows"] == [{"row": 3, "field": None, "message": "too many fields"}]
        assert body["errors"] == [{"field": "row 3", "message": "too many fields"}]

    async def test_a_name_longer_than_published_is_422_even_with_spaces_to_lose(self, inventory):
        # 255 characters once stripped, 257 as sent: the schema's maxLength is 255.
        answer = await inventory.post(PROJECTS, json={"name": "\t\f" + "*" * 255})
        body = assert_problem(answer, 422, "VALIDATION_FAILED")
        assert body["errors"][0]["field"] == "body.name"
        trimmed = await inventory.post(PROJECTS, json={"name": " Clock kit\t"})
        assert trimmed.status_code == 201 and trimmed.json()["name"] == "Clock kit"
