"""Tracing with the OpenTelemetry SDK: one source of truth for the trace.

Every service has its own tracer provider, so its spans carry its own
``service.name`` (``lkern-<service>`` unless ``OTEL_SERVICE_NAME`` or
``OTEL_RESOURCE_ATTRIBUTES`` name it) even where several services share a
process (``lkern run``). The span processors are the process's, shared by
every provider: exporting is chosen once (``configure_export``, called by the
composition root) and the SDK reads the standard ``OTEL_*`` variables itself
(sampler, batching, endpoint, headers, resource attributes, propagators).

The current span is what log lines, problem documents, outgoing calls and
events take their trace id and ``traceparent`` from, so every request, call
and event has one, exported or not. While a processor can read spans (an
exporter is configured, or a test attached one) they are the SDK's recording
spans; while none can, they are non-recording spans that carry the context
alone: recording spans that go nowhere cost a tenth of a W1 request
(docs/benchmarks.md, "Tracing"). The spans of requests, calls and events
are made by the platform's own code (middleware.py, grpc/, events/), and the
database statement spans here, each a few lines over the SDK: the maintained
instrumentations add work on every request that these spans do not need
(docs/benchmarks.md, "Tracing").
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine

logger = logging.getLogger(__name__)

TRACER_NAME = "lkern"

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ids = RandomIdGenerator()


class _Processors(SpanProcessor):
    """The process's span processors, behind every service's provider.

    The SDK can add a processor to a provider but not take one away; behind
    this one, processors come and go (a test's in-memory exporter) for every
    provider at once. With none, a span's start and end cost one call more.
    """

    def __init__(self) -> None:
        self.processors: tuple[SpanProcessor, ...] = ()

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        for processor in self.processors:
            processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: Any) -> None:
        for processor in self.processors:
            processor.on_end(span)

    def shutdown(self) -> None:
        for processor in self.processors:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(processor.force_flush(timeout_millis) for processor in self.processors)


_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class _Tracer(Tracer):
    """A service's tracer: the SDK's while any processor is attached, else one whose
    spans carry the trace context and record nothing.

    A span without a recorder keeps its parent's trace id and flags (or starts a
    sampled trace), so the next hop, which may export, still records it.
    """

    def __init__(self, sdk: Tracer) -> None:
        self._sdk = sdk

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Any = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        if _processors.processors:
            return self._sdk.start_span(
                name,
                context,
                kind,
                attributes,
                links,
                start_time,
                record_exception,
                set_status_on_exception,
            )
        parent = trace.get_current_span(context).get_span_context()
        if parent.is_valid:
            return NonRecordingSpan(
                SpanContext(
                    parent.trace_id,
                    _ids.generate_span_id(),
                    is_remote=False,
                    trace_flags=parent.trace_flags,
                    trace_state=parent.trace_state,
                )
            )
        return NonRecordingSpan(
            SpanContext(
                _ids.generate_trace_id(), _ids.generate_span_id(), False, trace_flags=_SAMPLED
            )
        )

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Any = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[Span]:
        span = self.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


def recording() -> bool:
    """Whether spans are recorded now: worth building their attributes for."""
    return bool(_processors.processors)


_lock = threading.Lock()
_tracers: dict[str | None, Tracer] = {}
_processors = _Processors()
_export_configured = False


def service_resource(service: str | None, version: str | None = None) -> Resource:
    """The resource of ``service``'s spans: what the environment says, else ``lkern-<service>``."""
    resource = Resource.create({SERVICE_VERSION: version} if version else {})
    named = resource.attributes.get(SERVICE_NAME)
    if not isinstance(named, str) or named.startswith("unknown_service"):
        default = f"lkern-{service}" if service else "lkern"
        resource = resource.merge(Resource({SERVICE_NAME: default}))
    return resource


def tracer(service: str | None = None, version: str | None = None) -> Tracer:
    """The tracer of ``service`` (one provider per service, made on first use)."""
    found = _tracers.get(service)
    if found is not None:
        return found
    with _lock:
        if service not in _tracers:
            # The processors are the process's: each provider's exit hook would
            # shut them down once per service, so ``shutdown`` does it once.
            provider = TracerProvider(
                resource=service_resource(service, version), shutdown_on_exit=False
            )
            provider.add_span_processor(_processors)
            _tracers[service] = _Tracer(provider.get_tracer(TRACER_NAME))
        return _tracers[service]


def add_span_processor(processor: SpanProcessor) -> None:
    """Send every service's spans, from now on, to ``processor`` too."""
    with _lock:
        _processors.processors = (*_processors.processors, processor)


def remove_span_processor(processor: SpanProcessor) -> None:
    """Stop sending spans to ``processor`` (a test's, once it is done)."""
    with _lock:
        _processors.processors = tuple(p for p in _processors.processors if p is not processor)


def export_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for OTLP export: an endpoint is set, and the
    exporter is not turned off (``OTEL_TRACES_EXPORTER=none``, ``OTEL_SDK_DISABLED``)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def configure_export(make_processor: Callable[[], SpanProcessor | None]) -> None:
    """Attach the process's exporting processor, once, whichever service starts first."""
    global _export_configured
    with _lock:
        if _export_configured:
            return
        _export_configured = True
    processor = make_processor()
    if processor is not None:
        add_span_processor(processor)


def flush(timeout_millis: int = 5000) -> None:
    """Hand the spans still buffered to the exporter (at shutdown: nothing is lost)."""
    try:
        _processors.force_flush(timeout_millis)
    except Exception as exc:  # a collector that is away must not stop a shutdown
        logger.warning("spans not flushed: %r", exc)


# ---------------------------------------------------------------------------
# The W3C trace context


def format_traceparent(context: SpanContext) -> str:
    # Only the sampled bit: the others are not defined for version 00 everywhere.
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags) & 1:02x}"


def current_traceparent() -> str:
    """The ``traceparent`` of the current span; outside any, of a new trace."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return f"00-{_ids.generate_trace_id():032x}-{_ids.generate_span_id():016x}-01"
    return format_traceparent(context)


def current_trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def parse_traceparent(header: str | None) -> SpanContext | None:
    """The remote span an incoming ``traceparent`` names; an invalid one is ignored,
    as the W3C recommendation asks."""
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip().lower())
    if not match:
        return None
    trace_id, span_id, flags = (int(group, 16) for group in match.groups())
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & 1))


def context_of(traceparent: str | None) -> Context | None:
    """A context whose parent is the span ``traceparent`` names (a CloudEvent's);
    ``None`` (a new trace) when it names none."""
    remote = parse_traceparent(traceparent)
    if remote is None:
        return None
    return trace.set_span_in_context(NonRecordingSpan(remote))


class _BytesHeaders(Getter[Mapping[bytes, bytes]]):
    """ASGI headers (lower-case bytes) for the configured propagators."""

    def get(self, carrier: Mapping[bytes, bytes], key: str) -> list[str] | None:
        value = carrier.get(key.encode("latin-1"))
        return None if value is None else [value.decode("latin-1")]

    def keys(self, carrier: Mapping[bytes, bytes]) -> list[str]:
        return [key.decode("latin-1") for key in carrier]


_BYTES_HEADERS = _BytesHeaders()
# The propagators configured (OTEL_PROPAGATORS): their fields are what a
# request must carry for there to be anything to extract.
_PROPAGATED = frozenset(field.encode("latin-1") for field in propagate.get_global_textmap().fields)


def extract_headers(headers: Mapping[bytes, bytes]) -> Context | None:
    """The caller's context from ASGI headers; ``None`` when they carry none, which
    spares most requests the propagators' work."""
    if _PROPAGATED.isdisjoint(headers):
        return None
    return propagate.extract(headers, getter=_BYTES_HEADERS)


def extract_metadata(metadata: Mapping[str, str]) -> Context | None:
    """The caller's context from gRPC metadata."""
    if _PROPAGATED.isdisjoint(key.encode("latin-1") for key in metadata):
        return None
    return propagate.extract(metadata)


def inject_metadata() -> list[tuple[str, str]]:
    """The current context as gRPC metadata, in the configured propagators' fields."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return list(carrier.items())


# ---------------------------------------------------------------------------
# Ending spans the same way everywhere


def fail(span: Span, error: BaseException | str) -> None:
    """Mark ``span`` as failed (``error.type``, status ERROR)."""
    if isinstance(error, BaseException):
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
    else:
        span.set_attribute("error.type", error)
        span.set_status(Status(StatusCode.ERROR))


# ---------------------------------------------------------------------------
# Database statements


def _db_system(dialect: str) -> str:
    return "postgresql" if dialect.startswith("postgres") else dialect


#: Statements whose span names and attributes are remembered, per database.
MAX_KNOWN_STATEMENTS = 512


class StatementSpans:
    """CLIENT spans for the statements run on one database.

    A statement outside any recording span (the relay's polling, the pool's
    pings, a consumer between events) gets none: it would be a trace of its
    own every second, about nothing anyone asked for.
    """

    def __init__(self, tracer: Tracer, url: URL) -> None:
        self._tracer = tracer
        self.system = _db_system(url.get_backend_name())
        self.namespace = url.database or ""
        base: dict[str, Any] = {"db.system.name": self.system}
        if self.namespace:
            base["db.namespace"] = self.namespace
        if url.host:
            base["server.address"] = url.host
            if url.port:
                base["server.port"] = url.port
        self._base = base
        self._known: dict[str, tuple[str, dict[str, Any]]] = {}

    def start(self, statement: str, batch_size: int | None = None) -> Span | None:
        if not trace.get_current_span().is_recording():
            return None
        known = self._known.get(statement)
        if known is None:
            known = self._describe(statement)
        name, attributes = known
        if batch_size is not None:
            attributes = {**attributes, "db.operation.batch.size": batch_size}
        return self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)

    def _describe(self, statement: str) -> tuple[str, dict[str, Any]]:
        """The span name and attributes of ``statement``, worked out once: statements
        are compiled once and run many times (the SDK copies the attributes)."""
        operation = statement.split(None, 1)[0].upper() if statement else ""
        attributes = {**self._base, "db.query.text": statement}
        if operation:
            attributes["db.operation.name"] = operation
        known = (f"{operation} {self.namespace}".strip() or self.system, attributes)
        if len(self._known) >= MAX_KNOWN_STATEMENTS:
            self._known.clear()  # a rare flood of one-off statements starts it afresh
        self._known[statement] = known
        return known


def trace_statements(engine: Engine, tracer: Tracer) -> StatementSpans:
    """A span for each statement ``engine`` runs inside a traced operation.

    On an async engine, pass its ``sync_engine``: the events fire there, in the
    awaiting task's context, once per statement (instrumenting the async
    engine as well would trace each twice).
    """
    spans = StatementSpans(tracer, engine.url)

    def before(
        _conn: Any, _cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        context._lkern_span = spans.start(statement, len(params) if many and params else None)

    def after(
        _conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        span = getattr(context, "_lkern_span", None)
        if span is not None:
            context._lkern_span = None
            span.end()

    def failed(exception_context: Any) -> None:
        context = exception_context.execution_context
        span = getattr(context, "_lkern_span", None)
        if span is not None:
            context._lkern_span = None
            fail(span, exception_context.original_exception)
            span.end()

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "handle_error", failed)
    return spans
