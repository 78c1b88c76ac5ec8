"""Client addresses (§9) in process, where the socket peer is 127.0.0.1; the served case,
behind uvicorn, is in tests/system/test_edge_served.py."""

from __future__ import annotations

import re

import httpx

from tests.conftest import client_of


class TestClientAddresses:
    @staticmethod
    async def jwks_statuses(client: httpx.AsyncClient, forwarded: list[str]) -> list[int]:
        return [
            (await client.get("/.well-known/jwks.json", headers={"X-Forwarded-For": f})).status_code
            for f in forwarded
        ]

    async def test_forwarded_for_from_an_untrusted_peer_changes_nothing(self, service_app):
        async with (
            service_app("identity", anonymous_rate_limit_requests=3) as app,
            client_of(app) as client,
        ):
            forwarded = [f"203.0.113.{n}" for n in range(5)]
            assert await self.jwks_statuses(client, forwarded) == [200, 200, 200, 429, 429]

    async def test_a_trusted_proxy_s_forwarded_for_names_the_client(self, service_app, caplog):
        caplog.set_level("INFO", logger="lkern.http")
        async with (
            service_app(
                "identity", anonymous_rate_limit_requests=2, trusted_proxies="10.0.0.0/8,127.0.0.1"
            ) as app,
            client_of(app) as client,
        ):
            # The right-most address no trusted proxy vouches for is the client:
            # whatever a client writes to its left is its own say.
            ada = ["1.1.1.1, 198.51.100.7", "9.9.9.9, 198.51.100.7, 10.1.2.3", "198.51.100.7"]
            assert await self.jwks_statuses(client, ada) == [200, 200, 429]
            assert await self.jwks_statuses(client, ["198.51.100.8, 10.0.0.1"]) == [200]
        assert "GET /.well-known/jwks.json -> 429" in caplog.text
        assert re.search(r"jwks.json -> 200 in [\d.]+ ms from 198\.51\.100\.8$", caplog.text, re.M)

    async def test_failed_logins_are_counted_per_resolved_client(self, service_app):
        async with (
            service_app(
                "identity",
                admin_email="root@example.com",
                admin_password="the right password",
                login_failure_limit=3,
            ) as app,
            client_of(app) as client,
        ):
            statuses = [
                (
                    await client.post(
                        "/api/v1/auth/token",
                        data={"username": "nobody@example.com", "password": "wrong one!"},
                        headers={"X-Forwarded-For": f"203.0.113.{n}"},
                    )
                ).status_code
                for n in range(5)
            ]
        assert statuses == [401, 401, 401, 429, 429]
