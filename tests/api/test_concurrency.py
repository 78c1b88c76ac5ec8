"""Races the database must settle: uniqueness, lost updates, code sequences."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import httpx
import pytest

from lkern.platform.codes import next_code
from tests.api.test_contacts import BASE, assert_problem, create


async def test_twenty_concurrent_creates_with_one_email(contacts: httpx.AsyncClient, backend):
    body = {"name": "Racer", "email": "race@example.com"}
    responses = await asyncio.gather(*(contacts.post(BASE, json=body) for _ in range(20)))
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {201: 1, 409: 19}, statuses
    winner = next(r for r in responses if r.status_code == 201).json()
    for response in responses:
        if response.status_code == 409:
            problem = assert_problem(response, 409, "CONTACT_EMAIL_TAKEN")
            assert problem["existing_id"] == winner["id"]
    assert (await contacts.get(BASE)).json()["total"] == 1


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_concurrent_updates_never_overwrite_silently(
    contacts: httpx.AsyncClient, backend, method
):
    created = await create(contacts)
    url = f"{BASE}/{created['id']}"
    # PUT sends the whole contact, PATCH only the field it changes.
    whole = {"name": created["name"], "email": created["email"]} if method == "PUT" else {}
    responses = await asyncio.gather(
        *(contacts.request(method, url, json={**whole, "notes": f"writer {n}"}) for n in range(10))
    )
    succeeded = [r for r in responses if r.status_code == 200]
    for response in responses:
        if response.status_code != 200:
            assert_problem(response, 409, "CONCURRENT_MODIFICATION")
    final = (await contacts.get(url)).json()
    # Every successful write bumped the version exactly once: none was lost.
    assert final["version"] == 1 + len(succeeded)
    assert final["notes"] in {r.json()["notes"] for r in succeeded}


@pytest.mark.parametrize("creators", [100])
async def test_codes_are_distinct_and_gap_free_under_concurrency(orders, orders_service, creators):
    """The §6 generator: concurrent transactions, one counter row, no MAX()."""
    runtime = orders_service.runtime

    async def one() -> str:
        async with runtime.unit_of_work() as uow:
            code = await next_code(uow.session, "TST")
            await uow.commit()
            return code

    codes = await asyncio.gather(*(one() for _ in range(creators)))
    assert len(set(codes)) == creators
    numbers = sorted(int(code.rsplit("-", 1)[1]) for code in codes)
    assert numbers == list(range(1, creators + 1))
    assert all(re.fullmatch(r"TST-\d{4}-\d{4}", code) for code in codes)


async def test_rolled_back_code_is_reused(orders, orders_service):
    runtime = orders_service.runtime
    async with runtime.unit_of_work() as uow:
        first = await next_code(uow.session, "RB")
        # no commit: the number goes back
    async with runtime.unit_of_work() as uow:
        again = await next_code(uow.session, "RB")
        await uow.commit()
    assert first == again
