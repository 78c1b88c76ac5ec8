"""The gauges /metrics reads from the database: one refresh for callers that come together."""

from __future__ import annotations

import asyncio

from lkern.platform.metrics import ServiceMetrics


async def test_concurrent_refreshes_share_one_run_which_a_caller_leaving_does_not_stop():
    metrics = ServiceMetrics("x", "1")
    runs = 0
    gate = asyncio.Event()

    async def refresh() -> None:
        nonlocal runs
        runs += 1
        await gate.wait()

    callers = [
        asyncio.create_task(metrics.refresh_gauges(refresh, max_age_seconds=60)) for _ in range(50)
    ]
    await asyncio.sleep(0)
    callers[0].cancel()
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*callers[1:])
    assert runs == 1
    await metrics.refresh_gauges(refresh, max_age_seconds=60)
    assert runs == 1  # still fresh
    await metrics.refresh_gauges(refresh, max_age_seconds=0)
    assert runs == 2
