"""What the process runner does once a server is up."""

from __future__ import annotations

import asyncio
import gc
import socket

import uvicorn
from starlette.applications import Starlette

from lkern.platform.runner import _Server


async def test_a_started_server_freezes_what_startup_allocated():
    """Long-lived startup objects leave the collector's full passes (docs/benchmarks.md)."""
    server = _Server(uvicorn.Config(Starlette(), log_config=None, lifespan="on"))
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
