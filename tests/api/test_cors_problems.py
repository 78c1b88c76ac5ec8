"""Problem documents carry CORS headers for allowed origins, whoever answers: a route,
the rate limiter, the body limit, the 500 for a bug, admission's 503."""

from __future__ import annotations

import asyncio

import httpx

from tests.api.test_contacts import assert_problem
from tests.api.test_request_bodies import MIB, contact_json
from tests.conftest import client_of
from tests.support.tokens import bearer, mint

ORIGIN = "https://app.example.com"


class TestCorsOnProblems:
    @staticmethod
    def assert_cors(response: httpx.Response) -> None:
        assert response.headers.get("access-control-allow-origin") == ORIGIN, (
            response.status_code,
            dict(response.headers),
        )
        assert "Retry-After" in response.headers.get("access-control-expose-headers", "")

    async def test_every_problem_carries_cors_headers_for_allowed_origins(self, service_app):
        settings = {
            "cors_origins": [ORIGIN],
            "rate_limit_requests": 1,
            "max_concurrent_requests": 1,
            "request_queue_seconds": 0.05,
        }
        release = asyncio.Event()

        async def hold() -> dict[str, str]:
            await release.wait()
            return {}

        async def boom() -> None:
            raise RuntimeError("a bug")

        async with service_app(**settings) as app:
            app.add_api_route("/test/hold", hold)
            app.add_api_route("/test/boom", boom)
            async with client_of(app, Origin=ORIGIN) as client:
                limited = {"Authorization": f"Bearer {mint('viewer')}"}
                assert (await client.get("/api/v1/contacts", headers=limited)).status_code == 200
                problems = {
                    401: await client.get("/api/v1/contacts"),
                    404: await client.get("/api/v1/nothing", headers=bearer()),
                    413: await client.post("/api/v1/contacts", content=contact_json(2 * MIB)),
                    429: await client.get("/api/v1/contacts", headers=limited),
                    500: await client.get("/test/boom"),
                }
                holding = asyncio.create_task(client.get("/test/hold"))
                await asyncio.sleep(0.02)
                problems[503] = await client.get("/api/v1/contacts", headers=bearer())
                release.set()
                assert (await holding).status_code == 200
                other = await client.get("/test/boom", headers={"Origin": "https://evil.example"})
        codes = {
            401: "NOT_AUTHENTICATED",
            404: "NOT_FOUND",
            413: "BODY_TOO_LARGE",
            429: "RATE_LIMITED",
            500: "INTERNAL_ERROR",
            503: "SERVICE_BUSY",
        }
        for status, response in problems.items():
            assert_problem(response, status, codes[status])
            self.assert_cors(response)
        assert other.status_code == 500
        assert "access-control-allow-origin" not in other.headers
