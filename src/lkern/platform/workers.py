"""Background workers of a service and the one coordinator that stops them.

A worker is ``async def run(stopping: asyncio.Event)``: it does units of work
until ``stopping`` is set and always finishes the unit in hand (the relay's
batch, the consumer's message). A worker that crashes is restarted after a
pause, so one bug does not silently stop event delivery.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

Worker = Callable[[asyncio.Event], Awaitable[None]]
RESTART_DELAY_SECONDS = 1.0


class BackgroundWorkers:
    def __init__(self) -> None:
        self._stopping: asyncio.Event | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def stopping(self) -> asyncio.Event:
        if self._stopping is None:
            self._stopping = asyncio.Event()
        return self._stopping

    def start(self, name: str, worker: Worker) -> None:
        if name in self._tasks:
            raise ValueError(f"worker {name} already runs")
        self._tasks[name] = asyncio.create_task(self._supervise(name, worker), name=name)

    async def _supervise(self, name: str, worker: Worker) -> None:
        while not self.stopping.is_set():
            try:
                await worker(self.stopping)
            except Exception:
                logger.exception("worker %s crashed; restarting", name)
                try:
                    await asyncio.wait_for(self.stopping.wait(), RESTART_DELAY_SECONDS)
                except TimeoutError:
                    continue

    async def stop(self, grace_seconds: float) -> None:
        """Ask every worker to stop; cancel those still busy after the grace period."""
        self.stopping.set()
        tasks = list(self._tasks.values())
        self._tasks.clear()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
        for task in pending:
            logger.warning(
                "worker %s did not stop within %.1fs; cancelling", task.get_name(), grace_seconds
            )
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
