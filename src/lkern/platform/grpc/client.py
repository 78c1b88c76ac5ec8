"""Calling another service over gRPC: one channel per target, deadlines, retries.

Every call has a deadline; UNAVAILABLE (the peer is down or restarting) is
retried with exponential backoff inside that deadline, and every call carries
the trace and the calling service, so one trace id spans the whole request.
A call that cannot succeed in time raises :class:`DependencyUnavailable`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from lkern.platform.auth import current_token
from lkern.platform.errors import ServiceUnavailable
from lkern.platform.grpc import credentials
from lkern.platform.grpc.metadata import (
    AUTHORIZATION,
    CALLER_SERVICE,
    SERVICE_CREDENTIAL,
    TRACEPARENT,
)
from lkern.platform.tracing import current_trace, new_trace

logger = logging.getLogger(__name__)

T = TypeVar("T")
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE}
# Thousands of calls in flight on one channel end in CANCELLED; queue instead.
MAX_IN_FLIGHT = 256


class DependencyUnavailable(ServiceUnavailable):
    """A peer service could not answer within the deadline."""


@dataclass(frozen=True, slots=True)
class CallPolicy:
    deadline_seconds: float = 1.5
    first_backoff_seconds: float = 0.05
    max_backoff_seconds: float = 0.5


def method_of(rpc: Callable[..., Awaitable[Any]]) -> str:
    """The full method name (``/package.Service/Method``) a stub's callable calls.

    grpc.aio keeps it only as the callable's ``_method``; reading it here spares
    every call the task a client interceptor would cost.
    """
    method = getattr(rpc, "_method", None)
    if isinstance(method, bytes):
        return method.decode()
    if isinstance(method, str):
        return method
    raise TypeError(f"not a gRPC stub method: {rpc!r}")


class GrpcClient:
    """A client of one peer service; share it, its channel is meant to live long."""

    def __init__(
        self,
        target: str,
        *,
        caller: str,
        peer: str,
        secret: str,
        policy: CallPolicy = CallPolicy(),
        unavailable_code: str = "DEPENDENCY_UNAVAILABLE",
    ) -> None:
        self.target = target
        self.caller = caller
        self.peer = peer
        self._secret = secret
        self.policy = policy
        self.unavailable_code = unavailable_code
        self._channel: grpc.aio.Channel | None = None
        self._in_flight: asyncio.Semaphore | None = None

    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(
                self.target,
                options=[
                    ("grpc.keepalive_time_ms", 30_000),
                    ("grpc.enable_retries", 0),  # retries are ours, bounded by the deadline
                ],
            )
            self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()

    def _metadata(self, method: str) -> tuple[tuple[str, str], ...]:
        trace = current_trace.get() or new_trace()
        metadata = [
            (TRACEPARENT, trace.child().traceparent),
            (CALLER_SERVICE, self.caller),
            (SERVICE_CREDENTIAL, credentials.issue(self._secret, self.caller, method)),
        ]
        token = current_token.get()
        if token is not None:  # the user on whose behalf this call is made
            metadata.append((AUTHORIZATION, f"Bearer {token}"))
        return tuple(metadata)

    async def call(self, rpc: Callable[..., Awaitable[T]], request: Any) -> T:
        """``await client.call(stub.Method, request)`` with deadline and retries."""
        self.channel()
        assert self._in_flight is not None
        method = method_of(rpc)
        deadline = time.monotonic() + self.policy.deadline_seconds
        backoff = self.policy.first_backoff_seconds
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._unavailable(f"no answer within {self.policy.deadline_seconds}s")
            try:
                async with self._in_flight:
                    return await rpc(request, timeout=remaining, metadata=self._metadata(method))
            except grpc.aio.AioRpcError as error:
                code = error.code()
                if code is grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise self._unavailable("deadline exceeded") from error
                if code not in _RETRYABLE:
                    raise
                logger.debug("%s unavailable (attempt %d): %s", self.peer, attempt, error.details())
            pause = min(backoff, max(0.0, deadline - time.monotonic()))
            await asyncio.sleep(pause * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self.policy.max_backoff_seconds)

    def _unavailable(self, why: str) -> DependencyUnavailable:
        logger.warning("%s at %s unavailable: %s", self.peer, self.target, why)
        return DependencyUnavailable(
            f"The {self.peer} service is unavailable; try again shortly.",
            code=self.unavailable_code,
        )
