"""The edge against real ``lkern serve`` processes, spoken to over raw sockets: bodies
over the limit or too slow (§2), and who the client is behind uvicorn (§9)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.processes import free_port
from tests.support.raw_http import Raw
from tests.support.tokens import mint
from tests.system.conftest import ServedService, identity_env, serve

MIB = 1024 * 1024
ADMIN = {"LKERN_ADMIN_PASSWORD": "served admin password"}


def serve_identity(tmp_path_factory, name: str, **env: str) -> ServedService:
    port = free_port()
    return serve(
        "identity",
        tmp_path_factory.mktemp(name),
        {**identity_env(port), "LKERN_IDENTITY_PORT": str(port), **ADMIN, **env},
    )


@pytest.fixture(scope="module")
def identity(tmp_path_factory) -> Iterator[ServedService]:
    """Identity as deployed with no proxy in front: five failed logins per client."""
    service = serve_identity(tmp_path_factory, "edge-identity", LKERN_LOGIN_FAILURE_LIMIT="5")
    yield service
    service.process.stop()


@pytest.fixture(scope="module")
def contacts(tmp_path_factory, identity) -> Iterator[ServedService]:
    """Two requests at once, a body must come within 1.5 s plus 1 s per 1000 bytes."""
    env = {
        **identity_env(int(identity.base_url.rsplit(":", 1)[1])),
        "LKERN_MAX_CONCURRENT_REQUESTS": "2",
        "LKERN_REQUEST_QUEUE_SECONDS": "3",
        "LKERN_BODY_TIMEOUT_SECONDS": "1.5",
        "LKERN_BODY_MIN_RATE": "1000",
    }
    service = serve("contacts", tmp_path_factory.mktemp("edge-contacts"), env)
    yield service
    service.process.stop()


JSON = {"Content-Type": "application/json"}


async def test_a_declared_oversized_body_is_413_unread_and_unauthenticated(contacts):
    async with Raw(contacts.base_url) as raw:
        await raw.head("POST", "/api/v1/contacts", {**JSON, "Content-Length": str(2 * MIB)})
        status, headers, body = await asyncio.wait_for(raw.response(), 5)
        assert status == 413
        assert headers["content-type"] == "application/problem+json"
        assert json.loads(body)["code"] == "BODY_TOO_LARGE"
        assert await asyncio.wait_for(raw.closed(), 5)


async def test_a_chunked_oversized_body_is_413_once_it_passes_the_limit(contacts):
    async with Raw(contacts.base_url) as raw:
        await raw.head("POST", "/api/v1/contacts", {**JSON, "Transfer-Encoding": "chunked"})
        chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
        answer = asyncio.create_task(raw.response())
        sent = 0
        while not answer.done() and sent < 4 * MIB:
            await raw.send(chunk)
            sent += 64 * 1024
            await asyncio.sleep(0.001)
        status, _, body = await asyncio.wait_for(answer, 5)
    assert status == 413 and json.loads(body)["code"] == "BODY_TOO_LARGE"
    assert sent <= 2 * MIB  # cut off soon after the 1 MiB limit, not at the end


async def test_slow_bodies_are_cut_off_and_hold_nobody_up(contacts):
    """Ten clients trickle a body at 10 bytes/s; with two admission slots, a normal
    request still answers at once, and each slow client gets a 408 and is closed."""
    token = {"Authorization": f"Bearer {mint('member')}"}
    head = {**JSON, **token, "Content-Length": "200"}

    async def slow_client() -> tuple[str, float]:
        async with Raw(contacts.base_url) as raw:
            await raw.head("POST", "/api/v1/contacts", head)
            started = time.perf_counter()
            answer = asyncio.create_task(raw.response())
            try:
                for _ in range(200):
                    if answer.done():
                        break
                    await raw.send(b" ")
                    await asyncio.sleep(0.1)
            except ConnectionError:
                pass
            try:
                status, _, body = await asyncio.wait_for(answer, 5)
                outcome = f"{status} {json.loads(body)['code']}"
            except (ConnectionError, asyncio.IncompleteReadError):
                outcome = "closed"
            return outcome, time.perf_counter() - started

    async with httpx.AsyncClient(base_url=contacts.base_url, headers=token) as client:
        # Warmed up: identity's keys fetched, the database opened.
        assert (await client.get("/api/v1/contacts", timeout=10)).status_code == 200
        slow = [asyncio.create_task(slow_client()) for _ in range(10)]
        await asyncio.sleep(0.5)
        started = time.perf_counter()
        normal = await client.get("/api/v1/contacts", timeout=10)
        normal_took = time.perf_counter() - started
    outcomes = await asyncio.wait_for(asyncio.gather(*slow), 10)
    assert normal.status_code == 200, normal.text
    assert normal_took < 1.0, normal_took
    assert {outcome for outcome, _ in outcomes} <= {"408 BODY_TIMEOUT", "closed"}, outcomes
    # 1.5 s plus a little for the few bytes that came, and the checks' pace.
    assert max(took for _, took in outcomes) < 3.0, outcomes
    print(f"normal request among 10 slow clients: {normal_took * 1000:.0f} ms; slow: {outcomes}")


async def failed_logins(base_url: str, attempts: int) -> list[int]:
    """Failed logins from loopback for one account, each naming another client: the
    count is per account and client address, so only a believed header could spread it."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        return [
            (
                await client.post(
                    "/api/v1/auth/token",
                    data={"username": "nobody@example.com", "password": "wrong one!"},
                    headers={"X-Forwarded-For": f"203.0.113.{n}"},
                )
            ).status_code
            for n in range(attempts)
        ]


async def test_a_spoofed_forwarded_for_from_loopback_changes_nothing(identity):
    assert await failed_logins(identity.base_url, 10) == [401] * 5 + [429] * 5


async def test_a_trusted_proxy_s_forwarded_for_is_believed(tmp_path_factory):
    trusting = serve_identity(
        tmp_path_factory,
        "edge-identity-proxied",
        LKERN_LOGIN_FAILURE_LIMIT="5",
        LKERN_TRUSTED_PROXIES="127.0.0.1,::1",
    )
    try:
        # Each a client of its own behind the proxy: none is limited.
        assert await failed_logins(trusting.base_url, 10) == [401] * 10
    finally:
        trusting.process.stop()
    assert "POST /api/v1/auth/token -> 401 in" in trusting.process.output()
    assert "from 203.0.113.9" in trusting.process.output()
