"""One deadline for the whole of a service's shutdown (§4).

The grace period (``LKERN_SHUTDOWN_GRACE_SECONDS``) runs from the signal, not
afresh for every step: the drain of in-flight requests, the gRPC server, the
background workers, the producer's flush and the pools all spend one budget,
so the process is gone within the grace period however the time is shared
out, and an orchestrator that waits that long never has to kill it.

The request drain gets most of the budget; a share is kept for the steps
after it, so a request that never ends cannot leave the relay no time to
finish its batch. Requests still running when the drain's share is spent are
cut off: they are cancelled and answered 503 (middleware.py), their
transactions rolled back.
"""

from __future__ import annotations

import time

#: The share of the grace period the steps after the request drain are sure to get.
AFTER_DRAIN_SHARE = 0.25


class Shutdown:
    """When a service began to stop, and how much of its grace period is left."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self._deadline: float | None = None
        #: The drain is over and the requests still running are being cut off.
        self.cutting_off = False

    def begin(self) -> None:
        """Start the clock; the first call (the signal, else the first step) sets it."""
        if self._deadline is None:
            self._deadline = time.monotonic() + self.grace_seconds

    def remaining(self) -> float:
        """Seconds left of the grace period; asking starts the clock if nothing did."""
        self.begin()
        assert self._deadline is not None
        return max(0.0, self._deadline - time.monotonic())

    def drain_remaining(self) -> float:
        """Seconds left for in-flight requests: the budget less the later steps' share."""
        return max(0.0, self.remaining() - self.grace_seconds * AFTER_DRAIN_SHARE)
