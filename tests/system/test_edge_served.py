"""The edge against real ``lkern serve`` processes: who the client is behind uvicorn (§9)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.processes import free_port
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


async def failed_logins(base_url: str, attempts: int) -> list[int]:
    """Failed logins from loopback, each naming another client and another account."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        return [
            (
                await client.post(
                    "/api/v1/auth/token",
                    data={"username": f"nobody{n}@example.com", "password": "wrong one!"},
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
