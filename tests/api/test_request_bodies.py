"""Request bodies are bounded (§2): a 413 before parsing and authentication, whether
the length is announced or streamed, and a 408 for a body that comes too slowly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from tests.api.test_contacts import assert_problem
from tests.conftest import client_of
from tests.support.tokens import bearer

MIB = 1024 * 1024


def contact_json(size: int) -> bytes:
    """A contact whose JSON document is ``size`` bytes long."""
    head, tail = b'{"name": "Big", "email": "big@example.com", "notes": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def in_chunks(body: bytes, size: int = 64 * 1024, pause: float = 0.0) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        if pause:
            await asyncio.sleep(pause)
        yield body[start : start + size]


class TestBodyLimits:
    async def test_an_oversized_body_is_413_before_authentication(self, service_app):
        async with service_app() as app, client_of(app) as anonymous:
            response = await anonymous.post(
                "/api/v1/contacts",
                content=contact_json(2 * MIB),
                headers={"Content-Type": "application/json"},
            )
        problem = assert_problem(response, 413, "BODY_TOO_LARGE")
        assert str(MIB) in problem["detail"]
        assert response.headers["connection"] == "close"

    async def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(self, service_app):
        async with service_app() as app, client_of(app, **bearer()) as client:
            response = await client.post(
                "/api/v1/contacts",
                content=in_chunks(contact_json(2 * MIB)),
                headers={"Content-Type": "application/json"},
            )
            assert "content-length" not in response.request.headers
            assert_problem(response, 413, "BODY_TOO_LARGE")
            # Nothing was created.
            assert (await client.get("/api/v1/contacts")).json()["total"] == 0

    async def test_a_body_within_the_limit_is_read_whole_streamed_or_not(self, service_app):
        async with service_app(max_body_bytes=64 * 1024) as app, client_of(app, **bearer()) as c:
            body = contact_json(60 * 1024)
            headers = {"Content-Type": "application/json"}
            whole = await c.post("/api/v1/contacts", content=body, headers=headers)
            assert whole.status_code == 422, whole.text  # notes are too long: parsed, then refused
            streamed = await c.post(
                "/api/v1/contacts", content=in_chunks(body, 1000), headers=headers
            )
            assert streamed.json() == {**whole.json(), "trace_id": streamed.json()["trace_id"]}
            small = await c.post(
                "/api/v1/contacts",
                content=in_chunks(b'{"name": "Ada", "email": "ada@example.com"}', 7),
                headers=headers,
            )
            assert small.status_code == 201, small.text
            assert_problem(
                await c.post("/api/v1/contacts", content=contact_json(65 * 1024), headers=headers),
                413,
                "BODY_TOO_LARGE",
            )

    async def test_a_body_slower_than_the_configured_rate_is_408(self, service_app):
        async with (
            service_app(body_timeout_seconds=0.3, body_min_rate=1000) as app,
            client_of(app, **bearer()) as client,
        ):
            started = time.perf_counter()
            response = await client.post(
                "/api/v1/contacts",
                content=in_chunks(b'{"name": "Slow", "email": "slow@example.com"}', 2, 0.1),
                headers={"Content-Type": "application/json"},
            )
            took = time.perf_counter() - started
            assert_problem(response, 408, "BODY_TIMEOUT")
            assert response.headers["connection"] == "close"
            assert took < 1.0
            assert (await client.get("/api/v1/contacts")).json()["total"] == 0
