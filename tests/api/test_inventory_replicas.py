"""Two inventory replicas on one PostgreSQL database: stock they change at the same time
is never oversold, a free location goes to one part only, and racing builds take only
what exists. Requests alternate between the replicas, so each race runs across both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest

from lkern.platform.app import create_app
from lkern.services import SERVICES
from tests.api.test_inventory import BOXES, PARTS, PROJECTS, new_box, new_part, put, stock
from tests.conftest import ServiceUnderTest, settings_for
from tests.support.postgres import create_database, drop_database


@pytest.fixture(scope="module")
async def replicas(
    postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[httpx.AsyncClient]]:
    admin_url = postgres_admin_url
    url = await create_database(admin_url)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(drop_database, admin_url, url)
        clients = []
        for number in (1, 2):
            settings = settings_for(
                SERVICES["inventory"], tmp_path_factory.mktemp(f"inventory-replica-{number}"), url
            )
            app = create_app(SERVICES["inventory"], settings, migrate=number == 1)
            await stack.enter_async_context(app.router.lifespan_context(app))
            service = ServiceUnderTest(SERVICES["inventory"], app)
            clients.append(await stack.enter_async_context(service.client("member")))
        yield clients


async def test_20_removals_of_1_from_10_sell_exactly_10(replicas) -> None:
    first, _ = replicas
    box = await new_box(first)
    part = await new_part(first)
    await put(first, part["id"], box, 1, 10)
    answers = await asyncio.gather(
        *(
            stock(replicas[n % 2], part["id"], "remove", box_no=box, loc_no=1, quantity=1)
            for n in range(20)
        )
    )
    assert sorted(a.status_code for a in answers) == [200] * 10 + [409] * 10
    refused = [a.json() for a in answers if a.status_code == 409]
    assert {body["code"] for body in refused} == {"INSUFFICIENT_STOCK"}
    after = (await first.get(f"{PARTS}/{part['id']}")).json()
    assert after["total_quantity"] == 0 and after["locations"] == []
    history = (await first.get(f"{PARTS}/{part['id']}/history")).json()
    assert [h["kind"] for h in history["items"]].count("remove") == 10
    assert (await first.get(f"{BOXES}/{box}")).json()["used"] == 0


async def test_moves_into_one_free_location_one_wins(replicas) -> None:
    first, _ = replicas
    box = await new_box(first, 10)
    parts = [await new_part(first, description=f"part {n}") for n in range(6)]
    for n, part in enumerate(parts):
        await put(first, part["id"], box, n + 1, 5)
    answers = await asyncio.gather(
        *(
            stock(
                replicas[n % 2],
                part["id"],
                "move",
                from_box_no=box,
                from_loc_no=n + 1,
                to_box_no=box,
                to_loc_no=10,
                quantity=5,
            )
            for n, part in enumerate(parts)
        )
    )
    assert sorted(a.status_code for a in answers) == [200] + [409] * 5
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"LOCATION_OCCUPIED"}
    locations = (await first.get(f"{BOXES}/{box}/locations")).json()
    winner = next(part for part, a in zip(parts, answers, strict=True) if a.status_code == 200)
    assert locations[9]["part_id"] == winner["id"] and locations[9]["quantity"] == 5
    # The losers changed nothing: their stock is where it was.
    held = [loc["quantity"] for loc in locations[:6]]
    assert sorted(held) == [0] + [5] * 5
    assert (await first.get(f"{BOXES}/{box}")).json()["used"] == 6


async def test_racing_builds_take_only_what_exists(replicas) -> None:
    first, _ = replicas
    box = await new_box(first, 10)
    a = await new_part(first, description="a")
    b = await new_part(first, description="b")
    await put(first, a["id"], box, 1, 2)
    await put(first, a["id"], box, 2, 3)
    await put(first, b["id"], box, 3, 9)
    project = (
        await first.post(
            PROJECTS,
            json={
                "name": "race",
                "requirements": [
                    {"part_id": a["id"], "quantity": 4},
                    {"part_id": b["id"], "quantity": 1},
                ],
            },
        )
    ).json()
    answers = await asyncio.gather(
        *(replicas[n % 2].post(f"{PROJECTS}/{project['id']}/build", json={}) for n in range(6))
    )
    assert sorted(a.status_code for a in answers) == [200] + [409] * 5
    assert (await first.get(f"{PARTS}/{a['id']}")).json()["total_quantity"] == 1
    assert (await first.get(f"{PARTS}/{b['id']}")).json()["total_quantity"] == 8
