"""Admission control: requests beyond the limit wait their turn, in order, or get a 503."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lkern.platform.admission import AdmissionMiddleware


def app_with(limit: int, patience: float, release: asyncio.Event, log: list[str]) -> Starlette:
    async def slow(request: Request) -> JSONResponse:
        log.append(f"start {request.query_params['n']}")
        await release.wait()
        log.append(f"end {request.query_params['n']}")
        return JSONResponse({})

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/work", slow), Route("/health", health)])
    app.add_middleware(AdmissionMiddleware, limit=limit, patience_seconds=patience)
    return app


def client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_requests_beyond_the_limit_wait_and_run_in_arrival_order():
    release, log = asyncio.Event(), list[str]()
    async with client(app_with(2, 5, release, log)) as http:
        calls = []
        for n in range(5):
            calls.append(asyncio.create_task(http.get(f"/work?n={n}")))
            await asyncio.sleep(0.01)
        assert log == ["start 0", "start 1"]
        # Probes are never queued.
        assert (await http.get("/health")).status_code == 200
        release.set()
        answers = await asyncio.gather(*calls)
    assert [answer.status_code for answer in answers] == [200] * 5
    assert [entry for entry in log if entry.startswith("start")] == [f"start {n}" for n in range(5)]


async def test_a_request_that_waits_too_long_gets_a_503_with_retry_after():
    release, log = asyncio.Event(), list[str]()
    async with client(app_with(1, 0.05, release, log)) as http:
        first = asyncio.create_task(http.get("/work?n=0"))
        await asyncio.sleep(0.01)
        busy = await http.get("/work?n=1")
        release.set()
        assert (await first).status_code == 200
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["code"] == "SERVICE_BUSY"
    assert "start 1" not in log
