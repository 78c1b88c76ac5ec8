"""gRPC servers: one per service that offers RPCs, with the standard health and
reflection services.

Every call runs in the service's logging context and in a SERVER span, the
child of the caller's (``traceparent`` in the metadata), and errors become status codes the same way
everywhere: not found, bad argument, dependency down, or a logged bug. A
servicer that aborts the call itself (``context.abort``) has chosen its status.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer

from lkern.platform.db_errors import database_problem
from lkern.platform.errors import DomainError, NotFound, ServiceUnavailable, Unprocessable
from lkern.platform.grpc import credentials
from lkern.platform.grpc.metadata import CALLER_SERVICE, SERVICE_CREDENTIAL
from lkern.platform.logging import current_service
from lkern.platform.telemetry import extract_metadata, fail
from lkern.platform.telemetry import tracer as tracer_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registration:
    """A gRPC service a server offers: its proto description, by which health and
    reflection name it, and how its servicer is added to the server."""

    service: ServiceDescriptor
    add_to: Callable[[grpc.aio.Server], None]

    @property
    def name(self) -> str:
        return self.service.full_name


#: Orchestrators probe health, and tools like grpcurl ask reflection, without credentials.
UNAUTHENTICATED_PREFIXES = (
    f"/{health.SERVICE_NAME}/",
    f"/{reflection.SERVICE_NAME}/",
)


class InvalidArgument(ValueError):
    """A request field is malformed; answered with INVALID_ARGUMENT."""


MAX_IDS_PER_LOOKUP = 1000


def parse_id(value: str, what: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument(f"not a {what}: {value[:64]!r}") from None


def parse_ids(values: Sequence[str], what: str = "id") -> list[uuid.UUID]:
    """Ids of a batch lookup: at most MAX_IDS_PER_LOOKUP, each well formed."""
    if len(values) > MAX_IDS_PER_LOOKUP:
        raise InvalidArgument(f"at most {MAX_IDS_PER_LOOKUP} ids per lookup, got {len(values)}")
    return [parse_id(value, what) for value in values]


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if not isinstance(exc, DomainError):
        # A database failure is an outage, a refused value or a bug, as over HTTP.
        exc = database_problem(exc) or exc
    if isinstance(exc, InvalidArgument | Unprocessable):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND, exc.detail
    if isinstance(exc, ServiceUnavailable):
        return grpc.StatusCode.UNAVAILABLE, "a dependency is unavailable; retry shortly"
    if isinstance(exc, DomainError):
        return grpc.StatusCode.FAILED_PRECONDITION, exc.detail
    return grpc.StatusCode.INTERNAL, "internal error; quote the trace id"


#: The codes that mark a server span as failed (semantic conventions): the
#: others are the caller's mistake or an answer, not the server's fault.
SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def rpc_attributes(method: str) -> dict[str, str]:
    """``rpc.*`` attributes of ``/package.Service/Method``."""
    service, _, name = method.lstrip("/").partition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


class ContextInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Trace and service context around each call, and one log line per call."""

    def __init__(
        self,
        service: str,
        secret: str,
        *,
        skew: float = credentials.DEFAULT_SKEW_SECONDS,
        tracer: Tracer | None = None,
    ) -> None:
        self.service = service
        self._secret = secret
        self._skew = skew
        self._tracer = tracer or tracer_of(service)

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        metadata = dict(details.invocation_metadata or ())
        method = details.method
        inner = handler.unary_unary
        service = self.service
        tracer = self._tracer
        attributes = rpc_attributes(method)

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            span = tracer.start_span(
                method.lstrip("/"),
                context=extract_metadata(metadata),
                kind=SpanKind.SERVER,
                attributes=attributes,
            )
            span_token = otel_context.attach(trace.set_span_in_context(span))
            service_token = current_service.set(service)
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await self._call(inner, request, context, metadata, method)
            except grpc.aio.AbortError:
                # The servicer (or the credential check) answered with a status
                # of its own choosing; the call is already over, so it is
                # neither re-aborted nor a bug.
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception as exc:
                code, message = status_for(exc)
                if code is grpc.StatusCode.INTERNAL:
                    logger.exception("gRPC %s failed", method)
                    span.record_exception(exc)
                await context.abort(code, message)
            finally:
                logger.info(
                    "gRPC %s from %s -> %s in %.1f ms",
                    method,
                    metadata.get(CALLER_SERVICE, "?"),
                    code.name,
                    (time.perf_counter() - started) * 1000,
                )
                span.set_attribute("rpc.grpc.status_code", code.value[0])
                if code in SERVER_ERRORS:
                    fail(span, code.name)
                span.end()
                current_service.reset(service_token)
                otel_context.detach(span_token)

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def _call(
        self,
        inner: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
        request: Any,
        context: grpc.aio.ServicerContext,
        metadata: dict[str, str],
        method: str,
    ) -> Any:
        """The servicer's answer, once the caller proved to be a service of ours."""
        if not method.startswith(UNAUTHENTICATED_PREFIXES):
            try:
                caller = credentials.verify(
                    self._secret, metadata.get(SERVICE_CREDENTIAL), method, skew=self._skew
                )
            except credentials.InvalidCredential as refused:
                logger.warning("gRPC %s refused: %s", method, refused)
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED, "valid service credentials required"
                )
            metadata[CALLER_SERVICE] = caller
        return await inner(request, context)


class GrpcServer:
    """A started ``grpc.aio`` server with health, stopped within a grace period."""

    def __init__(
        self,
        service: str,
        host: str,
        port: int,
        registrations: list[Registration],
        *,
        secret: str,
        clock_skew_seconds: float = credentials.DEFAULT_SKEW_SECONDS,
        tracer: Tracer | None = None,
    ) -> None:
        self.service = service
        self._tracer = tracer
        self._secret = secret
        self._skew = clock_skew_seconds
        self.address = f"{host}:{port}"
        self._registrations = registrations
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self.port = port

    async def start(self) -> None:
        server = grpc.aio.server(
            interceptors=[
                ContextInterceptor(self.service, self._secret, skew=self._skew, tracer=self._tracer)
            ]
        )
        for registration in self._registrations:
            registration.add_to(server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        services = [registration.name for registration in self._registrations]
        reflection.enable_server_reflection(
            [*services, health.SERVICE_NAME, reflection.SERVICE_NAME], server
        )
        self.port = server.add_insecure_port(self.address)
        if self.port == 0:
            raise RuntimeError(f"cannot listen for gRPC on {self.address}")
        await server.start()
        self._server = server
        # The whole server, the service by its short name, and each of its gRPC
        # services by the fully qualified name clients and orchestrators use.
        for name in ("", self.service, *services):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        logger.info("%s gRPC listening on %s", self.service, self.address)

    async def stop(self, grace_seconds: float) -> None:
        if self._server is None:
            return
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace_seconds)
        self._server = None
