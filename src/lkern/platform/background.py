"""Tasks left to finish on their own, held until they do (the loop holds tasks weakly)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: Every task :func:`left_running` started that has not ended yet.
RUNNING: set[asyncio.Task[Any]] = set()


def left_running(work: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """Run ``work`` in a task nobody awaits, kept alive until it ends; a process's exit
    cancels what is still running then."""
    task = asyncio.create_task(work, name=name)
    RUNNING.add(task)
    task.add_done_callback(RUNNING.discard)
    return task
