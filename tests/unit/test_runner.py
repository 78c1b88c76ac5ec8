"""What the process runner does once a server is up, and how it stops it (shutdown.py)."""

from __future__ import annotations

import asyncio
import gc
import socket

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message

from lkern.platform.middleware import UnhandledErrorMiddleware
from lkern.platform.runner import _Server
from lkern.platform.shutdown import Shutdown


async def test_a_started_server_freezes_what_startup_allocated():
    """Long-lived startup objects leave the collector's full passes (docs/benchmarks.md)."""
    server = _Server(uvicorn.Config(Starlette(), log_config=None, lifespan="on"), Shutdown(1))
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    started = asyncio.Event()
    startup = server.startup

    async def startup_then_tell(sockets: list[socket.socket] | None = None) -> None:
        await startup(sockets)
        started.set()

    server.startup = startup_then_tell  # type: ignore[method-assign]
    gc.unfreeze()
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        async with asyncio.timeout(10):
            await started.wait()
        assert gc.get_freeze_count() > 0
    finally:
        server.should_exit = True
        await serving
        gc.unfreeze()
        listening.close()


def test_the_grace_period_is_one_budget_from_the_first_ask(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("lkern.platform.shutdown.time.monotonic", lambda: now[0])
    shutdown = Shutdown(8)
    now[0] = 130.0  # nothing has asked yet: the clock has not started
    assert shutdown.remaining() == 8
    now[0] = 133.0
    shutdown.begin()  # a later start keeps the first deadline
    assert shutdown.remaining() == 5
    # The drain leaves the steps after it their share (a quarter) of the grace period.
    assert shutdown.drain_remaining() == 3
    now[0] = 137.0
    assert shutdown.drain_remaining() == 0
    assert shutdown.remaining() == 1
    now[0] = 140.0
    assert shutdown.remaining() == 0


def cut_off_app(shutdown: Shutdown, entered: asyncio.Event) -> UnhandledErrorMiddleware:
    """A route that never ends (it waits for a body that never comes), behind the
    platform's error layer."""

    async def endless(_: Request) -> Response:
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return UnhandledErrorMiddleware(Starlette(routes=[Route("/", endless)]), shutdown)


async def test_a_request_still_running_when_the_drain_ends_is_answered_503():
    shutdown, entered = Shutdown(0.8), asyncio.Event()
    server = _Server(
        uvicorn.Config(cut_off_app(shutdown, entered), log_config=None, lifespan="off"), shutdown
    )
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            answer = asyncio.create_task(client.get("/", timeout=10))
            async with asyncio.timeout(10):
                await entered.wait()
            shutdown.begin()
            server.should_exit = True
            response = await answer
        async with asyncio.timeout(10):
            await serving
    finally:
        listening.close()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["connection"] == "close"
    assert response.json()["code"] == "SHUTTING_DOWN"
    assert shutdown.cutting_off


async def test_a_cancelled_request_outside_a_cut_off_stays_cancelled():
    shutdown, entered = Shutdown(10), asyncio.Event()
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    request = asyncio.create_task(cut_off_app(shutdown, entered)(scope, receive, send))
    await entered.wait()
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert sent == []
