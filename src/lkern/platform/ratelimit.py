"""Rate limits: fixed windows counted per process, or shared by all replicas in Redis.

A limit is ``(requests, window seconds)`` per key (a user, a client address,
a login). Counting is increment-then-decide: the count is raised first and the
request judged by the new value, so concurrent requests can never all see the
last free slot.

When Redis is set but does not answer, it is skipped for a while (a circuit
breaker, one warning per interval) and asked again later by one request: the
request limits fail open, since throttling is a protection, not a reason to
refuse service, while login throttling counts in process meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from lkern.platform.errors import DomainError

logger = logging.getLogger(__name__)


class RateLimited(DomainError):
    status = 429
    title = "Too many requests"
    default_code = "RATE_LIMITED"

    def __init__(self, detail: str, retry_after: int, *, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers={"Retry-After": str(retry_after)})


class CounterUnavailable(Exception):
    """The shared counter cannot be asked now (it failed, or failed lately)."""


@dataclass(frozen=True, slots=True)
class Limit:
    requests: int
    window_seconds: int


#: One key's count in one window: its name (window start included) and how long to keep it.
Slot = tuple[str, int]


class Counter(Protocol):
    async def add(self, slots: Sequence[Slot], amount: int = 1) -> list[int]:
        """Add ``amount`` to each slot's count; the new counts, each taken atomically."""

    async def close(self) -> None:
        """Let go of connections, if any."""


def _slot(key: str, limit: Limit) -> tuple[Slot, int]:
    """The slot of ``key`` in ``limit``'s current window, and seconds until that window ends."""
    now = time.time()
    start = int(now // limit.window_seconds) * limit.window_seconds
    remaining = max(1, math.ceil(start + limit.window_seconds - now))
    return (f"{key}:{start}", limit.window_seconds + 1), remaining


class MemoryCounter:
    """Per process; enough for one replica and for lkern run."""

    MAX_KEYS = 100_000

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}

    async def add(self, slots: Sequence[Slot], amount: int = 1) -> list[int]:
        # Nothing here awaits, so no other task runs between a read and its write:
        # each increment is atomic within the event loop.
        now = time.monotonic()
        if len(self._counts) > self.MAX_KEYS:
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        counts = []
        for name, keep_seconds in slots:
            count, expires_at = self._counts.get(name, (0, 0.0))
            if expires_at <= now:
                count, expires_at = 0, now + keep_seconds
            count += amount
            self._counts[name] = (count, expires_at)
            counts.append(count)
        return counts

    async def close(self) -> None:
        pass


class RedisCounter:
    """Shared by every replica: INCRBY and EXPIRE per slot, all slots in one round trip.

    Timeouts are short and a failure opens the breaker: Redis is skipped for
    ``retry_seconds``, then one call probes it again while the others still skip.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 0.05,
        retry_seconds: float = 5.0,
        prefix: str = "lkern:rl",
    ) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._redis = Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            # The client's own retries would multiply every timeout; the breaker retries.
            retry=Retry(NoBackoff(), 0),
        )
        parts = urlsplit(url)
        self._where = f"{parts.hostname}:{parts.port or 6379}"  # never the password
        self._timeout = timeout_seconds
        self._retry_seconds = retry_seconds
        self._prefix = prefix
        self._skip_until = 0.0  # monotonic; Redis is not asked before then
        self._down = False
        self._warned_at = float("-inf")

    async def add(self, slots: Sequence[Slot], amount: int = 1) -> list[int]:
        now = time.monotonic()
        if now < self._skip_until:
            raise CounterUnavailable(f"Redis at {self._where} is skipped for now")
        if self._down:  # this call probes; the others skip Redis until it is answered
            self._skip_until = now + self._retry_seconds
        from redis.exceptions import RedisError

        try:
            # Each connect and reply has the socket timeout; this bounds the whole
            # exchange too, whatever the client does in between.
            async with asyncio.timeout(4 * self._timeout):
                async with self._redis.pipeline(transaction=True) as pipe:
                    for name, keep_seconds in slots:
                        pipe.incrby(f"{self._prefix}:{name}", amount)
                        pipe.expire(f"{self._prefix}:{name}", keep_seconds)
                    results = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self._trip(exc)
            raise CounterUnavailable(f"Redis at {self._where}: {exc!r}") from exc
        if self._down:
            self._down = False
            self._skip_until = 0.0
            logger.warning("Redis at %s answers again: rate limits are shared again", self._where)
        return [int(count) for count in results[::2]]

    def _trip(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._down = True
        self._skip_until = now + self._retry_seconds
        if now - self._warned_at >= self._retry_seconds:
            self._warned_at = now
            logger.warning(
                "Redis at %s unavailable (%r): request limits let everything through and "
                "login throttling counts in process; asking again in %g s",
                self._where,
                exc,
                self._retry_seconds,
            )

    async def close(self) -> None:
        await self._redis.aclose()


@dataclass(slots=True)
class Reservation:
    """Attempts counted before they were made; released when one turns out not to count."""

    counter: Counter
    slots: Sequence[Slot]

    async def release(self) -> None:
        # Should the counter fail now, the count stays one higher until its window ends.
        with contextlib.suppress(CounterUnavailable):
            await self.counter.add(self.slots, -1)


class RateLimiter:
    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        # Where attempts that must be limited even without Redis are counted meanwhile.
        self._local: Counter = counter if isinstance(counter, MemoryCounter) else MemoryCounter()

    async def close(self) -> None:
        await self.counter.close()

    async def check(self, key: str, limit: Limit, *, what: str = "requests") -> None:
        """Count a request against ``limit``; raise RateLimited once it is exceeded."""
        slot, remaining = _slot(key, limit)
        try:
            [count] = await self.counter.add([slot])
        except CounterUnavailable:
            return  # fail open; the counter has warned
        if count > limit.requests:
            raise RateLimited(
                f"Too many {what}: at most {limit.requests} per {limit.window_seconds} s. "
                f"Try again in {remaining} s.",
                remaining,
            )

    async def reserve(
        self, limits: Sequence[tuple[str, Limit]], *, what: str, code: str
    ) -> Reservation:
        """Count one attempt against every ``(key, limit)`` before it is made, and refuse
        it (429) when any limit is exceeded by it. The caller releases the reservation
        when the attempt is one that should not count (a success).

        Attempts in flight count too, so that concurrent ones cannot all pass: ten
        at once against a limit of one are one attempt and nine refusals. Without
        the shared counter, attempts are counted in process rather than not at all.
        """
        slots, remaining = zip(*(_slot(key, limit) for key, limit in limits), strict=True)
        counter = self.counter
        try:
            counts = await counter.add(slots)
        except CounterUnavailable:
            counter = self._local
            counts = await counter.add(slots)
        reservation = Reservation(counter, slots)
        waits = [
            wait
            for count, wait, (_, limit) in zip(counts, remaining, limits, strict=True)
            if count > limit.requests
        ]
        if waits:
            await reservation.release()
            raise RateLimited(
                f"Too many {what}; try again in {max(waits)} s.", max(waits), code=code
            )
        return reservation
