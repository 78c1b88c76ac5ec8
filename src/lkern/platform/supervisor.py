"""``lkern serve SERVICE --workers N``: N worker processes behind one HTTP and one gRPC port.

Each worker is a whole ``lkern serve`` process (its own pools, relay, consumer
group membership, admission queue and metrics), so a service uses as many
cores as it has workers. How the port is shared:

- HTTP: this parent binds one socket per worker on the same port with
  ``SO_REUSEPORT`` and hands it to that worker, keeping no copy. The kernel
  spreads new connections evenly over the sockets that listen. One socket
  shared by all would let the first worker woken accept a whole burst of
  keep-alive connections and keep them. A worker's socket starts listening
  only once its app has started (uvicorn listens after the lifespan), so no
  connection waits on a worker still starting. It closes with its worker, so
  once a worker is dead the kernel sends new connections to the others.
- gRPC: grpc binds its port itself, with ``SO_REUSEPORT`` (grpc's default on
  Linux), so every worker listens on the same port and the kernel spreads
  connections the same way. A client's channel is one connection, so one
  channel talks to one worker.

Before binding, the parent checks that both ports are free with a plain bind;
a port anything listens on (with ``SO_REUSEPORT`` or not) refuses that bind,
so a second instance fails at once instead of silently sharing the port.

Supervision: worker 1 starts alone (it migrates the schema and runs the
service's start hook), the others once it is ready. A worker that dies before
it was ready means every start would fail (configuration, database, port): the
parent stops the others and exits 1. A worker that dies after it was ready is
replaced after a second, up to ``MAX_RESTARTS`` in
``RESTART_WINDOW_SECONDS``; past that the parent stops the others and exits 1.
SIGTERM or SIGINT to the parent is sent on to every worker (which is in a
process group of its own, so a terminal's Ctrl-C reaches it once); each drains
as ``lkern serve`` does. The parent exits 0 when every worker exited 0. A
worker also stops gracefully when the parent is gone (its control socket reads
end of file), so a killed parent leaves no orphans serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

RESTART_DELAY_SECONDS = 1.0
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 60.0
#: What a worker sends on its control socket once all its servers listen.
READY = b"ready\n"


@dataclass(frozen=True, slots=True)
class WorkerLink:
    """What a worker process gets from its parent: its place, its HTTP socket and the
    control socket it reports readiness on and learns of the parent's exit from."""

    index: int
    count: int
    http: socket.socket
    control: socket.socket

    @classmethod
    def parse(cls, spec: str) -> WorkerLink:
        """From ``INDEX/COUNT:HTTP_FD:CONTROL_FD``, as the parent passes it."""
        place, http_fd, control_fd = spec.split(":")
        index, count = place.split("/")
        return cls(
            int(index),
            int(count),
            socket.socket(fileno=int(http_fd)),
            socket.socket(fileno=int(control_fd)),
        )

    @property
    def name(self) -> str:
        return f"worker {self.index}/{self.count} (pid {os.getpid()})"

    def ready(self) -> None:
        self.control.sendall(READY)

    def on_parent_exit(self, loop: asyncio.AbstractEventLoop, gone: Callable[[], None]) -> None:
        """Call ``gone`` once the parent has exited (the control socket is closed)."""
        self.control.setblocking(False)

        def readable() -> None:
            try:
                data = self.control.recv(64)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(self.control.fileno())
                gone()

        loop.add_reader(self.control.fileno(), readable)


def check_port_free(host: str, port: int) -> None:
    """Raise OSError when something already listens on ``host:port`` (see the module
    docstring: a plain bind fails even against ``SO_REUSEPORT`` holders)."""
    family, address = _address(host, port)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` beside the other workers', not yet listening."""
    family, address = _address(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _address(host: str, port: int) -> tuple[socket.AddressFamily, Any]:
    """The family and socket address ``host`` (a name or an address) binds to."""
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return family, address


@dataclass
class _Slot:
    index: int
    process: asyncio.subprocess.Process | None = None
    control: socket.socket | None = None
    ready: bool = False
    exited: asyncio.Task[int] | None = None


@dataclass
class Supervisor:
    """The parent of ``count`` workers of ``service`` (see the module docstring)."""

    service: str
    count: int
    host: str
    port: int
    grpc_port: int | None
    grace_seconds: float
    slots: list[_Slot] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _restarts: deque[float] = field(default_factory=deque)
    _signal: signal.Signals = signal.SIGTERM

    def command(self, slot: _Slot, http_fd: int, control_fd: int) -> list[str]:
        spec = f"{slot.index}/{self.count}:{http_fd}:{control_fd}"
        return [sys.executable, "-m", "lkern", "serve", self.service, "--worker-link", spec]

    async def run(self) -> int:
        """Serve until a signal (0 when every worker stopped cleanly) or a failure (1)."""
        check_port_free(self.host, self.port)
        if self.grpc_port is not None:
            check_port_free(self.host, self.grpc_port)
        self.slots = [_Slot(index) for index in range(1, self.count + 1)]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._request_stop, sig)
        logger.info(
            "%s: %d workers on http://%s:%d%s (supervisor pid %d)",
            self.service,
            self.count,
            self.host,
            self.port,
            f" and gRPC port {self.grpc_port}" if self.grpc_port is not None else "",
            os.getpid(),
        )
        try:
            ok = await self._start(self.slots[:1])
            if ok and not self._stopping.is_set():
                ok = await self._start(self.slots[1:])
            if ok:
                ok = await self._watch()
            return await self._stop_all(failed=not ok)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _request_stop(self, sig: signal.Signals) -> None:
        if self._stopping.is_set():
            # A second signal: the workers force their exit as lkern serve does.
            logger.warning("second %s: passing it on", sig.name)
            self._send(sig)
            return
        logger.info("%s received: stopping %d workers", sig.name, self.count)
        self._signal = sig
        self._stopping.set()

    def _send(self, sig: signal.Signals) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(sig)

    async def _spawn(self, slot: _Slot) -> None:
        http = reuseport_socket(self.host, self.port)
        ours, theirs = socket.socketpair()
        try:
            slot.process = await asyncio.create_subprocess_exec(
                *self.command(slot, http.fileno(), theirs.fileno()),
                pass_fds=(http.fileno(), theirs.fileno()),
                # Its own process group: a terminal's Ctrl-C reaches the parent
                # only, which passes it on once.
                start_new_session=True,
            )
        finally:
            # The worker's now: they close when it exits.
            http.close()
            theirs.close()
        ours.setblocking(False)
        slot.control, slot.ready = ours, False
        slot.exited = asyncio.create_task(slot.process.wait())
        logger.info(
            "%s worker %d/%d started (pid %d)",
            self.service,
            slot.index,
            self.count,
            slot.process.pid,
        )

    async def _start(self, slots: list[_Slot]) -> bool:
        """Start ``slots`` and wait until each is ready; False if one exits first."""
        for slot in slots:
            await self._spawn(slot)
        results = await asyncio.gather(*(self._wait_ready(slot) for slot in slots))
        return all(results)

    async def _wait_ready(self, slot: _Slot) -> bool:
        assert slot.control is not None and slot.exited is not None
        loop = asyncio.get_running_loop()
        reading = asyncio.ensure_future(loop.sock_recv(slot.control, len(READY)))
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({reading, slot.exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if reading.done():
            if reading.exception() is None and reading.result():
                slot.ready = True
                return True
            # The control socket closed: the worker has exited (or is exiting).
            await slot.exited
        reading.cancel()
        if slot.exited.done():
            logger.error(
                "%s worker %d exited with %d before it was ready",
                self.service,
                slot.index,
                slot.exited.result(),
            )
            return False
        return True  # asked to stop while it started: not a failure

    async def _watch(self) -> bool:
        """Restart workers that die while serving; False once they die too often."""
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                exits = {slot.exited: slot for slot in self.slots if slot.exited is not None}
                done, _ = await asyncio.wait(
                    {stopping, *exits}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    if task is stopping:
                        continue
                    slot = exits[task]
                    if not await self._restart(slot, task.result()):
                        return False
            return True
        finally:
            stopping.cancel()

    async def _restart(self, slot: _Slot, code: int) -> bool:
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > RESTART_WINDOW_SECONDS:
            self._restarts.popleft()
        if len(self._restarts) >= MAX_RESTARTS:
            logger.error(
                "%s worker %d exited with %d: %d restarts within %.0fs already, giving up",
                self.service,
                slot.index,
                code,
                MAX_RESTARTS,
                RESTART_WINDOW_SECONDS,
            )
            return False
        self._restarts.append(now)
        logger.error(
            "%s worker %d exited with %d; restarting it in %.0fs",
            self.service,
            slot.index,
            code,
            RESTART_DELAY_SECONDS,
        )
        if slot.control is not None:
            slot.control.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), RESTART_DELAY_SECONDS)
        if self._stopping.is_set():
            return True
        await self._spawn(slot)
        return await self._wait_ready(slot)

    async def _stop_all(self, *, failed: bool) -> int:
        """Signal every worker, wait for them to drain; 0 if all exited cleanly."""
        self._send(self._signal)
        # A worker's whole shutdown fits in its grace period (shutdown.py); the
        # margin is for the interpreter's own exit on a busy machine.
        limit = self.grace_seconds + 10
        waiting = [slot.exited for slot in self.slots if slot.exited is not None]
        _, pending = await asyncio.wait(waiting, timeout=limit) if waiting else (set(), set())
        if pending:
            logger.error("%d workers still running after %.0fs: killing them", len(pending), limit)
            self._send(signal.SIGKILL)
            await asyncio.gather(*pending, return_exceptions=True)
        codes = [slot.exited.result() for slot in self.slots if slot.exited is not None]
        for slot in self.slots:
            if slot.control is not None:
                slot.control.close()
        clean = not failed and not pending and all(code == 0 for code in codes)
        logger.info("%s: all workers stopped (exit codes %s)", self.service, codes)
        return 0 if clean else 1


def supervise(supervisor: Supervisor) -> int:
    return asyncio.run(supervisor.run())
