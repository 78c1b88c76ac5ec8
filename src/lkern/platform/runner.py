"""Serving one or several services in one process, with one shutdown coordinator.

uvicorn's own signal handling assumes one server per process; under
``lkern run`` there are several, so signals are taken here and passed to all
of them at once. The signal starts each service's shutdown clock
(shutdown.py); each server then stops accepting, finishes its in-flight
requests within the drain's share of the grace period, cuts off the rest, and
runs its app's shutdown in what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import signal
import socket
from collections.abc import Coroutine, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
import uvloop
from fastapi import FastAPI

from lkern.platform.shutdown import Shutdown
from lkern.platform.supervisor import WorkerLink

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    app: FastAPI
    host: str
    port: int
    #: The service's shutdown clock, which the signal starts.
    shutdown: Shutdown
    #: A socket already listening on that address (a worker's, from its supervisor).
    sock: socket.socket | None = None
    #: Said after the address in the start-up log line.
    note: str = "docs: /docs"


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, deadline: Shutdown) -> None:
        super().__init__(config)
        self.deadline = deadline

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Signals are handled by serve_all for every server together.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # What exists once a service has started (modules, models, mappers,
        # compiled schemas: about 170,000 objects) lives as long as the process.
        # The collector's full passes walked all of it, pausing the service
        # under load; frozen, they skip it (docs/benchmarks.md).
        gc.freeze()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn closes the listener and the idle connections, waits for the
        # requests in flight, then runs the app's shutdown (stop_runtime). The
        # wait ends when the drain's share of the grace period is spent: the
        # requests still running are cut off here and answer 503
        # (middleware.py). uvicorn's own limit, later, is only a backstop: it
        # cancels without telling the app, and the request answers a bare 500.
        drain = self.deadline.drain_remaining()
        self.config.timeout_graceful_shutdown = math.ceil(drain) + 1
        cut_off = asyncio.get_running_loop().call_later(drain, self._cut_off, drain)
        try:
            await super().shutdown(sockets)
        finally:
            cut_off.cancel()

    def _cut_off(self, drained: float) -> None:
        running = [task for task in self.server_state.tasks if not task.done()]
        if not running:
            return
        logger.warning(
            "%d request(s) still running after %.1fs of draining: cutting them off",
            len(running),
            drained,
        )
        self.deadline.cutting_off = True
        for task in running:
            task.cancel()


async def serve_all(listeners: Sequence[Listener], *, link: WorkerLink | None = None) -> None:
    """Serve until SIGINT or SIGTERM (or, for a worker, until its supervisor is gone)."""
    servers = [
        _Server(
            uvicorn.Config(
                listener.app,
                host=listener.host,
                port=listener.port,
                log_config=None,
                access_log=False,
                # uvicorn would believe X-Forwarded-For from 127.0.0.1 by
                # default; the app alone decides who the client is, from
                # LKERN_TRUSTED_PROXIES (addresses.py).
                proxy_headers=False,
                lifespan="on",
            ),
            listener.shutdown,
        )
        for listener in listeners
    ]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def request_stop(signame: str) -> None:
        if stop.is_set():
            logger.warning("second %s: forcing exit", signame)
            for server in servers:
                server.force_exit = True
            return
        logger.info("%s received: shutting down", signame)
        stop.set()
        for server in servers:
            server.deadline.begin()
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop, sig.name)
    try:
        tasks = [
            asyncio.create_task(server.serve(None if listener.sock is None else [listener.sock]))
            for server, listener in zip(servers, listeners, strict=True)
        ]
        if await _all_started(servers, tasks):
            for listener in listeners:
                logger.info(
                    "%s%s listening on http://%s:%d (%s)",
                    listener.name,
                    "" if link is None else f" {link.name}",
                    listener.host,
                    listener.port,
                    listener.note,
                )
            if link is not None:
                link.ready()
                link.on_parent_exit(loop, lambda: request_stop("supervisor exit"))
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            # One server ended on its own (e.g. its port was taken): stop the rest.
            request_stop("server exit")
        await asyncio.gather(*tasks, return_exceptions=True)
        failed = [server for server in servers if not server.started]
        if failed:
            raise SystemExit(1)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _all_started(
    servers: Sequence[uvicorn.Server], tasks: Sequence[asyncio.Task[None]]
) -> bool:
    """Wait until every server listens (its app started); False once one has ended."""
    while not all(server.started for server in servers):
        if any(task.done() for task in tasks):
            return False
        await asyncio.sleep(0.05)
    return True


def run_servers(main: Coroutine[Any, Any, None]) -> None:
    """Run the servers on uvloop, whose event loop takes less of every request than asyncio's."""
    uvloop.run(main)
