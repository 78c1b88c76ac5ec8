"""Admission control: a bounded number of requests run at once, the rest wait their turn.

An event loop that takes on every request at once shares its time among all
of them: each one holds its database connection longer, the pool runs dry
and requests fail with 503 although the service is merely busy. Letting a
fixed number in, first come first served, keeps connections moving and
latency even; a waiting request costs only its place in the queue. Health,
metrics and JWKS routes are never queued, so probes see a busy service as alive.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

from lkern.platform.problems import problem_response

# The JWKS route too: it is read from memory, and every service needs it to
# verify tokens, so it must not wait behind a burst of logins.
EXEMPT_PREFIXES = ("/health", "/metrics", "/.well-known/")


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, *, limit: int, patience_seconds: float) -> None:
        self.app = app
        self.patience_seconds = patience_seconds
        self._slots = asyncio.Semaphore(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        try:
            # asyncio.timeout, not wait_for: wait_for wraps the wait in a task
            # of its own, and under load most requests wait.
            async with asyncio.timeout(self.patience_seconds):
                await self._slots.acquire()
        except TimeoutError:
            busy = problem_response(
                503,
                "The service is busy; try again shortly.",
                code="SERVICE_BUSY",
                headers={"Retry-After": "1"},
            )
            await busy(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._slots.release()
