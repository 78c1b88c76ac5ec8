"""Traces exported over OTLP by served processes (§4): identity, contacts and orders
as ``lkern serve`` processes on PostgreSQL and a real Kafka-protocol broker, each
exporting to a real OTLP/HTTP receiver started by the test.

An order's creation is one trace: orders' request span, its gRPC client span,
contacts' server span, and orders' outbox publish span. No service consumes
orders' events, so the consuming side is shown on the events orders does
consume: a contact's creation is one trace from contacts' request span to the
handling span in the orders process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI, new_database_url
from tests.support.otlp import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.support.processes import free_port
from tests.support.tansu import TansuBroker, TansuUnavailable
from tests.support.tokens import bearer
from tests.system.conftest import ServedService, identity_env, serve

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("kafka")]

API = httpx.Client(headers=bearer("admin"), timeout=30)
VALIDATE = "lkern.proto.contacts.v1.ContactsService/ValidateContact"


@pytest.fixture
def traced(request, tmp_path: Path) -> Iterator[tuple[OtlpReceiver, ServedService, ServedService]]:
    broker = TansuBroker(tmp_path / "tansu.log")
    try:
        broker.start()
    except TansuUnavailable as exc:
        if IN_CI:
            pytest.fail(f"the Kafka-protocol broker is mandatory in CI: {exc}")
        pytest.skip(f"tansu unavailable: {exc}")
    started: list[ServedService] = []
    with otlp_receiver() as receiver:
        contacts_grpc, identity_port = free_port(), free_port()
        common = {
            **identity_env(identity_port),
            "LKERN_BROKER_URL": broker.url,
            "LKERN_KAFKA_IDEMPOTENCE": "false",
            "LKERN_KAFKA_SESSION_TIMEOUT_MS": "1000",
            "LKERN_KAFKA_HEARTBEAT_INTERVAL_MS": "300",
            "LKERN_KAFKA_REBALANCE_TIMEOUT_MS": "1000",
            "LKERN_CONTACTS_DATABASE_URL": new_database_url(request, "postgres", tmp_path / "c"),
            "LKERN_ORDERS_DATABASE_URL": new_database_url(request, "postgres", tmp_path / "o"),
            "LKERN_CONTACTS_GRPC_TARGET": f"127.0.0.1:{contacts_grpc}",
            # The standard variables, read by the SDK itself.
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        }
        try:
            started.append(
                serve(
                    "identity",
                    tmp_path / "identity",
                    {**common, "LKERN_IDENTITY_PORT": str(identity_port)},
                )
            )
            contacts = serve(
                "contacts",
                tmp_path / "contacts",
                {**common, "LKERN_CONTACTS_GRPC_PORT": str(contacts_grpc)},
            )
            started.append(contacts)
            orders = serve("orders", tmp_path / "orders", common)
            started.append(orders)
            yield receiver, contacts, orders
        finally:
            for service in started:
                service.process.stop()
            broker.stop()


def trace_of(response: httpx.Response) -> tuple[str, str]:
    """The trace id and the server span's id the response's ``traceparent`` names."""
    _, trace_id, span_id, _ = response.headers["traceparent"].split("-")
    return trace_id, span_id


def wait_for(
    receiver: OtlpReceiver, found: Callable[[list[ReceivedSpan]], bool], timeout: float = 30
) -> list[ReceivedSpan]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = receiver.spans()
        if found(spans):
            return spans
        time.sleep(0.1)
    names = sorted({(span.service, span.name) for span in receiver.spans()})
    raise AssertionError(f"spans not exported in time; received {names}")


def only(spans: list[ReceivedSpan], service: str, name: str, kind: str) -> ReceivedSpan:
    found = [s for s in spans if (s.service, s.name, s.kind_name) == (service, name, kind)]
    assert len(found) == 1, (service, name, kind, [(s.service, s.name) for s in spans])
    return found[0]


def test_an_order_and_a_consumed_event_are_each_one_trace_across_processes(traced):
    receiver, contacts, orders = traced

    created = API.post(
        f"{contacts.base_url}/api/v1/contacts", json={"name": "Ada", "email": "ada@example.com"}
    )
    assert created.status_code == 201, created.text
    contact_trace, contact_span = trace_of(created)

    order = API.post(f"{orders.base_url}/api/v1/orders", json={"contact_id": created.json()["id"]})
    assert order.status_code == 201, order.text
    order_trace, order_span = trace_of(order)
    assert order_trace != contact_trace

    def names_of(trace_id: str, spans: list[ReceivedSpan]) -> set[str]:
        return {span.name for span in spans if span.trace_id == trace_id}

    spans = wait_for(
        receiver,
        lambda spans: (
            {"publish lkern.orders.created", VALIDATE} <= names_of(order_trace, spans)
            and "process lkern.contacts.created" in names_of(contact_trace, spans)
        ),
    )
    assert not receiver.refused

    # The order: HTTP server span → gRPC client span → contacts' server span, and
    # the outbox publish span a child of the request span (the event's traceparent).
    in_order = [span for span in spans if span.trace_id == order_trace]
    http = only(in_order, "lkern-orders", "POST /api/v1/orders", "SPAN_KIND_SERVER")
    assert http.span_id == order_span and http.parent_span_id == ""
    assert http.attributes["http.route"] == "/api/v1/orders"
    assert http.attributes["http.response.status_code"] == 201
    client = only(in_order, "lkern-orders", VALIDATE, "SPAN_KIND_CLIENT")
    assert client.parent_span_id == http.span_id
    assert client.attributes["rpc.system"] == "grpc"
    server = only(in_order, "lkern-contacts", VALIDATE, "SPAN_KIND_SERVER")
    assert server.parent_span_id == client.span_id
    publish = only(in_order, "lkern-orders", "publish lkern.orders.created", "SPAN_KIND_PRODUCER")
    assert publish.parent_span_id == http.span_id
    assert publish.attributes["messaging.system"] == "kafka"
    # Its statements are in it too, children of the spans that ran them.
    statements = [span for span in in_order if "db.system.name" in span.attributes]
    assert statements and {span.attributes["db.system.name"] for span in statements} == {
        "postgresql"
    }
    ids = {span.span_id for span in in_order}
    assert all(span.parent_span_id in ids for span in statements)

    # The contact's event: contacts' request span → its publish span, and the
    # handling span in the orders process, the child of the event's traceparent.
    in_contact = [span for span in spans if span.trace_id == contact_trace]
    request = only(in_contact, "lkern-contacts", "POST /api/v1/contacts", "SPAN_KIND_SERVER")
    assert request.span_id == contact_span
    sent = only(
        in_contact, "lkern-contacts", "publish lkern.contacts.created", "SPAN_KIND_PRODUCER"
    )
    assert sent.parent_span_id == request.span_id
    handled = only(
        in_contact, "lkern-orders", "process lkern.contacts.created", "SPAN_KIND_CONSUMER"
    )
    assert handled.parent_span_id == request.span_id
    assert handled.attributes["messaging.consumer.group.name"] == "orders"
