"""OpenTelemetry spans of the services under test (§4): HTTP, gRPC, events, statements.

The spans are read with the SDK's in-memory exporter, attached to every
service's provider for the length of a test. The same spans exported over
OTLP by served processes: tests/system/test_tracing_export.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from lkern.platform import telemetry
from lkern.platform.bootstrap import build_span_processor
from tests.events.helpers import eventually
from tests.rpc.test_contacts_grpc import make


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    telemetry.add_span_processor(processor)
    try:
        yield exporter
    finally:
        telemetry.remove_span_processor(processor)


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.name == name]


def one(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = named(spans, name)
    assert len(found) == 1, (name, [span.name for span in spans.get_finished_spans()])
    return found[0]


async def arrived(spans: InMemorySpanExporter, name: str) -> bool:
    return bool(named(spans, name))


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [span for span in spans if span.parent and span.parent.span_id == parent.context.span_id]


def service_of(span: ReadableSpan) -> object:
    return span.resource.attributes["service.name"]


@pytest.mark.parametrize("query", ["", "?include_deleted=false"])
async def test_a_request_is_one_server_span_named_by_its_route(contacts, spans, query):
    """The express lane (no query string) and FastAPI's own path give the same span."""
    contact = await make(contacts)
    spans.clear()
    response = await contacts.get(f"/api/v1/contacts/{contact['id']}{query}")
    assert response.status_code == 200
    span = one(spans, "GET /api/v1/contacts/{contact_id}")
    assert span.kind is SpanKind.SERVER
    assert service_of(span) == "lkern-contacts"
    assert span.attributes is not None
    assert {
        key: span.attributes.get(key)
        for key in ("http.request.method", "http.route", "http.response.status_code", "url.path")
    } == {
        "http.request.method": "GET",
        "http.route": "/api/v1/contacts/{contact_id}",
        "http.response.status_code": 200,
        "url.path": f"/api/v1/contacts/{contact['id']}",
    }
    # The response names the request's own span.
    _, trace_id, span_id, _ = response.headers["traceparent"].split("-")
    assert (trace_id, span_id) == (f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}")
    # Its query is a child of it, with the database's attributes (on SQLite
    # the transaction's BEGIN is one more).
    statements = children(spans.get_finished_spans(), span)
    assert statements and all(child.kind is SpanKind.CLIENT for child in statements)
    [query] = [child for child in statements if child.name.startswith("SELECT")]
    assert query.attributes is not None
    assert query.attributes["db.system.name"] in {"postgresql", "sqlite"}
    assert str(query.attributes["db.query.text"]).lstrip().upper().startswith("SELECT")
    assert query.attributes["db.operation.name"] == "SELECT"


async def test_the_callers_traceparent_is_the_parent_and_problems_carry_the_trace_id(
    contacts, spans
):
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    response = await contacts.get(
        f"/api/v1/contacts/{uuid.uuid4()}",
        headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
    )
    assert response.status_code == 404
    assert response.json()["trace_id"] == trace_id
    span = one(spans, "GET /api/v1/contacts/{contact_id}")
    assert span.parent is not None and span.parent.is_remote
    assert (f"{span.context.trace_id:032x}", f"{span.parent.span_id:016x}") == (
        trace_id,
        parent_id,
    )
    assert span.status.status_code is StatusCode.UNSET  # a 404 is the client's answer


async def test_an_unmatched_path_is_named_by_its_method_alone(contacts, spans):
    assert (await contacts.get("/no/such/route")).status_code == 404
    [span] = [span for span in spans.get_finished_spans() if span.kind is SpanKind.SERVER]
    assert span.name == "GET"
    assert span.attributes is not None and "http.route" not in span.attributes


async def test_an_order_is_one_trace_from_the_request_to_the_published_event(
    orders, contacts, spans
):
    """Orders' request span → its gRPC client span → contacts' server span, and the
    relay's publish span a child of the request span (the event's traceparent)."""
    contact = await make(contacts)
    spans.clear()
    response = await orders.post("/api/v1/orders", json={"contact_id": contact["id"]})
    assert response.status_code == 201
    request = one(spans, "POST /api/v1/orders")
    assert service_of(request) == "lkern-orders"

    await eventually(lambda: arrived(spans, "publish lkern.orders.created"))
    [client] = [
        span
        for span in named(spans, "lkern.proto.contacts.v1.ContactsService/ValidateContact")
        if span.kind is SpanKind.CLIENT
    ]
    assert service_of(client) == "lkern-orders"
    assert client.parent is not None and client.parent.span_id == request.context.span_id
    assert client.attributes is not None
    assert client.attributes["rpc.system"] == "grpc"
    assert client.attributes["rpc.method"] == "ValidateContact"
    assert client.attributes["rpc.grpc.status_code"] == 0
    [server] = [
        span
        for span in named(spans, "lkern.proto.contacts.v1.ContactsService/ValidateContact")
        if span.kind is SpanKind.SERVER
    ]
    assert service_of(server) == "lkern-contacts"
    assert server.parent is not None and server.parent.span_id == client.context.span_id
    assert server.context.trace_id == request.context.trace_id

    [publish] = named(spans, "publish lkern.orders.created")
    assert publish.kind is SpanKind.PRODUCER and service_of(publish) == "lkern-orders"
    assert publish.context.trace_id == request.context.trace_id
    assert publish.parent is not None and publish.parent.span_id == request.context.span_id
    assert publish.attributes is not None
    assert publish.attributes["messaging.destination.name"] == "lkern.orders.created"
    assert publish.attributes["messaging.operation.type"] == "send"


async def test_a_consumed_event_is_handled_in_a_child_of_its_traceparent(orders, contacts, spans):
    """A contact created in contacts is read into orders' read model in a CONSUMER
    span whose parent is contacts' request span."""
    contact = await make(contacts)
    created = one(spans, "POST /api/v1/contacts")
    await eventually(lambda: arrived(spans, "process lkern.contacts.created"))
    [handled] = named(spans, "process lkern.contacts.created")
    assert handled.kind is SpanKind.CONSUMER and service_of(handled) == "lkern-orders"
    assert handled.context.trace_id == created.context.trace_id
    assert handled.parent is not None and handled.parent.span_id == created.context.span_id
    assert handled.attributes is not None
    assert handled.attributes["messaging.consumer.group.name"] == "orders"
    assert handled.attributes["messaging.destination.name"] == "lkern.contacts.created"
    assert handled.attributes["cloudevents.event_subject"] == contact["id"]
    # The handler's statements are its children.
    statements = children(spans.get_finished_spans(), handled)
    assert statements and all(span.kind is SpanKind.CLIENT for span in statements)


def test_the_service_name_defaults_to_lkern_service_unless_the_environment_names_it(
    monkeypatch,
):
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert telemetry.service_resource("orders").attributes["service.name"] == "lkern-orders"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging")
    resource = telemetry.service_resource("orders", "1.2.3")
    assert resource.attributes["service.name"] == "lkern-orders"
    assert resource.attributes["service.version"] == "1.2.3"
    assert resource.attributes["deployment.environment.name"] == "staging"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "shop-orders")
    assert telemetry.service_resource("orders").attributes["service.name"] == "shop-orders"


@pytest.mark.parametrize(
    ("environ", "exported"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_export_is_asked_for_by_the_standard_variables(environ, exported):
    assert telemetry.export_requested(environ) is exported


@pytest.mark.parametrize(
    ("protocol", "exporter"),
    [
        ("", "opentelemetry.exporter.otlp.proto.http.trace_exporter"),
        ("http/protobuf", "opentelemetry.exporter.otlp.proto.http.trace_exporter"),
        ("grpc", "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"),
    ],
)
def test_spans_are_batched_to_the_otlp_exporter_the_protocol_names(monkeypatch, protocol, exporter):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    processor = build_span_processor()
    try:
        assert isinstance(processor, BatchSpanProcessor)
        assert type(processor._batch_processor._exporter).__module__ == exporter
    finally:
        if processor is not None:
            processor.shutdown()


def test_no_endpoint_no_exporter(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert build_span_processor() is None


def test_without_a_processor_spans_carry_the_context_and_record_nothing():
    assert not telemetry.recording()
    tracer = telemetry.tracer("contacts")
    root = tracer.start_span("GET")
    assert not root.is_recording()
    context = root.get_span_context()
    assert context.is_valid and context.trace_flags.sampled
    remote = telemetry.context_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
    child = tracer.start_span("process", context=remote).get_span_context()
    # The caller's trace and its sampling decision go on, in a span of our own.
    assert f"{child.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert child.span_id != 0x00F067AA0BA902B7 and not child.trace_flags.sampled


async def test_without_a_processor_a_request_still_has_its_trace(contacts):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = await contacts.get(
        f"/api/v1/contacts/{uuid.uuid4()}",
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    _, answered, span_id, flags = response.headers["traceparent"].split("-")
    assert (answered, flags) == (trace_id, "01") and span_id != "00f067aa0ba902b7"
    assert response.json()["trace_id"] == trace_id
