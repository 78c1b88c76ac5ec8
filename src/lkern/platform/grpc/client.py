"""Calling another service over gRPC: one channel per target, deadlines, retries.

Every call has a deadline; UNAVAILABLE (the peer is down or restarting) is
retried with exponential backoff inside that deadline, and every call carries
the trace and the calling service, so one trace id spans the whole request.
A call is one CLIENT span, over its attempts; each attempt carries it as the
parent of the peer's SERVER span. (Made here, not by a client interceptor:
grpc.aio runs interceptors in a task of their own per call.)
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
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer

from lkern.platform.auth import current_token
from lkern.platform.errors import ServiceUnavailable
from lkern.platform.grpc import credentials
from lkern.platform.grpc.metadata import AUTHORIZATION, CALLER_SERVICE, SERVICE_CREDENTIAL
from lkern.platform.grpc.server import SERVER_ERRORS, rpc_attributes
from lkern.platform.telemetry import fail, inject_metadata
from lkern.platform.telemetry import tracer as tracer_of

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
        tracer: Tracer | None = None,
    ) -> None:
        self.target = target
        self.caller = caller
        self.peer = peer
        self._secret = secret
        self.policy = policy
        self.unavailable_code = unavailable_code
        self._channel: grpc.aio.Channel | None = None
        self._in_flight: asyncio.Semaphore | None = None
        self._tracer = tracer or tracer_of(caller)
        host, _, port = target.rpartition(":")
        self._peer_attributes: dict[str, str | int] = (
            {"server.address": host, "server.port": int(port)}
            if host and port.isdigit()
            else {"server.address": target}
        )

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
        metadata = [
            *inject_metadata(),
            (CALLER_SERVICE, self.caller),
            (SERVICE_CREDENTIAL, credentials.issue(self._secret, self.caller, method)),
        ]
        token = current_token.get()
        if token is not None:  # the user on whose behalf this call is made
            metadata.append((AUTHORIZATION, f"Bearer {token}"))
        return tuple(metadata)

    async def call(self, rpc: Callable[..., Awaitable[T]], request: Any) -> T:
        """``await client.call(stub.Method, request)`` with deadline and retries."""
        method = method_of(rpc)
        span = self._tracer.start_span(
            method.lstrip("/"),
            kind=SpanKind.CLIENT,
            attributes={**rpc_attributes(method), **self._peer_attributes},
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        code = grpc.StatusCode.OK
        try:
            return await self._call(rpc, request, method)
        except grpc.aio.AioRpcError as error:
            code = error.code()
            raise
        except DependencyUnavailable:
            code = grpc.StatusCode.UNAVAILABLE
            raise
        except BaseException as exc:
            code = grpc.StatusCode.UNKNOWN
            span.record_exception(exc)
            raise
        finally:
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code in SERVER_ERRORS:
                fail(span, code.name)
            span.end()
            otel_context.detach(token)

    async def _call(self, rpc: Callable[..., Awaitable[T]], request: Any, method: str) -> T:
        self.channel()
        assert self._in_flight is not None
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
