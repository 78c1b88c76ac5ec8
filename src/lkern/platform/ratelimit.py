"""Rate limits: fixed windows counted per process, or shared by all replicas in Redis.

A limit is ``(requests, window seconds)`` per key (a user, a client address,
a login). When Redis is set but does not answer, requests are let through and
a warning logged: throttling is a protection, not a reason to refuse service.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

from lkern.platform.errors import DomainError

logger = logging.getLogger(__name__)


class RateLimited(DomainError):
    status = 429
    title = "Too many requests"
    default_code = "RATE_LIMITED"

    def __init__(self, detail: str, retry_after: int, *, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers={"Retry-After": str(retry_after)})


@dataclass(frozen=True, slots=True)
class Limit:
    requests: int
    window_seconds: int


class Counter(Protocol):
    async def hit(self, key: str, window_seconds: int) -> tuple[int, int]:
        """Count one event; returns (events in the current window, seconds until it ends)."""

    async def peek(self, key: str, window_seconds: int) -> tuple[int, int]:
        """Events in the current window without counting one."""

    async def close(self) -> None:
        """Let go of connections, if any."""


def _window(window_seconds: int) -> tuple[int, int]:
    now = time.time()
    start = int(now // window_seconds) * window_seconds
    return start, max(1, math.ceil(start + window_seconds - now))


class MemoryCounter:
    """Per process; enough for one replica and for lkern run."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = asyncio.Lock()

    async def hit(self, key: str, window_seconds: int) -> tuple[int, int]:
        start, remaining = _window(window_seconds)
        async with self._lock:
            if len(self._counts) > 100_000:
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= start}
            count = self._counts.get((key, start), 0) + 1
            self._counts[(key, start)] = count
        return count, remaining

    async def peek(self, key: str, window_seconds: int) -> tuple[int, int]:
        start, remaining = _window(window_seconds)
        return self._counts.get((key, start), 0), remaining

    async def close(self) -> None:
        pass


class RedisCounter:
    """Shared by every replica: one INCR per event on a key that expires with its window."""

    def __init__(self, url: str, *, prefix: str = "lkern:rl") -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._prefix = prefix

    def _key(self, key: str, start: int) -> str:
        return f"{self._prefix}:{key}:{start}"

    async def hit(self, key: str, window_seconds: int) -> tuple[int, int]:
        start, remaining = _window(window_seconds)
        name = self._key(key, start)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, window_seconds + 1)
            count, _ = await pipe.execute()
        return int(count), remaining

    async def peek(self, key: str, window_seconds: int) -> tuple[int, int]:
        start, remaining = _window(window_seconds)
        value = await self._redis.get(self._key(key, start))
        return int(value or 0), remaining

    async def close(self) -> None:
        await self._redis.aclose()


class RateLimiter:
    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    async def close(self) -> None:
        await self.counter.close()

    async def check(self, key: str, limit: Limit, *, what: str = "requests") -> None:
        """Count a request against ``limit``; raise RateLimited once it is exceeded."""
        try:
            count, remaining = await self.counter.hit(key, limit.window_seconds)
        except Exception as exc:  # the limiter must fail open
            logger.warning("rate limiter unavailable, letting %s through: %r", key, exc)
            return
        if count > limit.requests:
            raise RateLimited(
                f"Too many {what}: at most {limit.requests} per {limit.window_seconds} s. "
                f"Try again in {remaining} s.",
                remaining,
            )

    async def blocked(self, key: str, limit: Limit) -> int | None:
        """Seconds to wait when ``key`` already used up ``limit``, else None (counts nothing)."""
        try:
            count, remaining = await self.counter.peek(key, limit.window_seconds)
        except Exception as exc:  # as above
            logger.warning("rate limiter unavailable: %r", exc)
            return None
        return remaining if count >= limit.requests else None

    async def record(self, key: str, limit: Limit) -> None:
        try:
            await self.counter.hit(key, limit.window_seconds)
        except Exception as exc:  # as above
            logger.warning("rate limiter unavailable: %r", exc)
