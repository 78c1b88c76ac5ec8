"""ContactsService over real gRPC (§7), and the platform's client and server behaviour."""

from __future__ import annotations

import asyncio
import io
import logging
import uuid

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from lkern.platform.auth import current_token
from lkern.platform.grpc import credentials
from lkern.platform.grpc.client import CallPolicy, DependencyUnavailable, GrpcClient
from lkern.platform.grpc.server import GrpcServer, Registration
from lkern.platform.logging import build_handler
from lkern.platform.settings import DEVELOPMENT_SECRET
from lkern.proto.contacts.v1 import contacts_pb2 as pb
from lkern.proto.contacts.v1 import contacts_pb2_grpc as pb_grpc
from tests.events.helpers import eventually
from tests.support.processes import free_port


class WithCredential(grpc.aio.UnaryUnaryClientInterceptor):
    """Signs every call as ``service`` with ``secret`` (a peer service, or a forger)."""

    def __init__(self, secret: str = DEVELOPMENT_SECRET, service: str = "orders") -> None:
        self.secret = secret
        self.service = service

    async def intercept_unary_unary(self, continuation, details, request):
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        credential = credentials.issue(self.secret, self.service, method)
        metadata = [*(details.metadata or []), ("x-lkern-service-credential", credential)]
        return await continuation(details._replace(metadata=metadata), request)


def channel_to(contacts_service, *interceptors) -> grpc.aio.Channel:
    target = f"127.0.0.1:{contacts_service.runtime.grpc_server.port}"
    return grpc.aio.insecure_channel(target, interceptors=list(interceptors))


@pytest.fixture
async def stub(contacts_service, contacts):
    channel = channel_to(contacts_service, WithCredential())
    yield pb_grpc.ContactsServiceStub(channel)
    await channel.close()


@pytest.mark.parametrize("interceptors", [(), (WithCredential(secret="not the secret"),)])
async def test_calls_without_valid_service_credentials_are_refused(contacts_service, interceptors):
    async with channel_to(contacts_service, *interceptors) as channel:
        stub = pb_grpc.ContactsServiceStub(channel)
        request = pb.ValidateContactRequest(id=str(uuid.uuid4()))
        assert (
            await code_of(stub.ValidateContact(request, timeout=5))
            is grpc.StatusCode.UNAUTHENTICATED
        )


def test_credentials_expire_and_name_their_service():
    method = "/lkern.proto.contacts.v1.ContactsService/GetContact"
    issued = credentials.issue("s3cret", "orders", method, now=1_000_000)
    assert credentials.verify("s3cret", issued, method, now=1_000_100) == "orders"
    with pytest.raises(credentials.InvalidCredential):
        credentials.verify(
            "s3cret", issued, method, now=1_000_000 + credentials.MAX_AGE_SECONDS + 31
        )
    with pytest.raises(credentials.InvalidCredential):
        credentials.verify("s3cret", issued.replace("orders", "admins"), method, now=1_000_100)


def contacts_server(name: str, port: int, servicer: pb_grpc.ContactsServiceServicer) -> GrpcServer:
    """A platform gRPC server on loopback offering ``servicer`` as ContactsService."""
    return GrpcServer(
        name,
        "127.0.0.1",
        port,
        [contacts_servicer(servicer)],
        secret=DEVELOPMENT_SECRET,
    )


class _Capture(pb_grpc.ContactsServiceServicer):
    """Hands back the service credential it was called with, as a snooper would keep it."""

    async def GetContact(self, request, context):
        credential = dict(context.invocation_metadata())["x-lkern-service-credential"]
        return pb.GetContactResponse(contact=pb.Contact(id=credential))


class _Replay(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, credential: str) -> None:
        self.credential = credential

    async def intercept_unary_unary(self, continuation, details, request):
        metadata = [*(details.metadata or []), ("x-lkern-service-credential", self.credential)]
        return await continuation(details._replace(metadata=metadata), request)


async def test_a_captured_credential_calls_only_its_own_method(contacts_service, contacts):
    """A credential the platform's client sent for GetContact, replayed within its
    lifetime: GetContact is let in, GetContactsByIds is not."""
    port = free_port()
    snooper = contacts_server("snooper", port, _Capture())
    await snooper.start()
    client = GrpcClient(
        f"127.0.0.1:{port}", caller="orders", peer="contacts", secret=DEVELOPMENT_SECRET
    )
    try:
        stub = pb_grpc.ContactsServiceStub(client.channel())
        answer = await client.call(stub.GetContact, pb.GetContactRequest(id=str(uuid.uuid4())))
        captured = answer.contact.id
    finally:
        await client.close()
        await snooper.stop(1)
    async with channel_to(contacts_service, _Replay(captured)) as channel:
        replayed = pb_grpc.ContactsServiceStub(channel)
        own = pb.GetContactRequest(id=str(uuid.uuid4()))
        assert await code_of(replayed.GetContact(own, timeout=5)) is grpc.StatusCode.NOT_FOUND
        other = pb.GetContactsByIdsRequest(ids=[str(uuid.uuid4())])
        assert (
            await code_of(replayed.GetContactsByIds(other, timeout=5))
            is grpc.StatusCode.UNAUTHENTICATED
        )


async def make(contacts: httpx.AsyncClient, **fields) -> dict:
    body = {"name": "Grace", "email": f"{uuid.uuid4().hex[:8]}@example.com", **fields}
    response = await contacts.post("/api/v1/contacts", json=body)
    assert response.status_code == 201
    return dict(response.json())


def contacts_servicer(servicer: pb_grpc.ContactsServiceServicer) -> Registration:
    return Registration(
        pb.DESCRIPTOR.services_by_name["ContactsService"],
        lambda server: pb_grpc.add_ContactsServiceServicer_to_server(servicer, server),
    )


async def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value.code()


async def test_get_contact(stub, contacts):
    created = await make(contacts, phone="+421905123456")
    answer = await stub.GetContact(pb.GetContactRequest(id=created["id"]), timeout=5)
    assert answer.contact.id == created["id"]
    assert answer.contact.email == created["email"] and answer.contact.phone == "+421905123456"
    assert answer.contact.is_active and answer.contact.version == 1
    assert not answer.contact.HasField("company")


async def test_get_contact_errors(stub, contacts):
    gone = await make(contacts)
    await contacts.delete(f"/api/v1/contacts/{gone['id']}")
    assert (
        await code_of(stub.GetContact(pb.GetContactRequest(id=gone["id"]), timeout=5))
        is grpc.StatusCode.NOT_FOUND
    )
    missing = pb.GetContactRequest(id=str(uuid.uuid4()))
    assert await code_of(stub.GetContact(missing, timeout=5)) is grpc.StatusCode.NOT_FOUND
    malformed = pb.GetContactRequest(id="not-an-id")
    assert await code_of(stub.GetContact(malformed, timeout=5)) is grpc.StatusCode.INVALID_ARGUMENT


async def test_get_contacts_by_ids(stub, contacts):
    first = await make(contacts)
    second = await make(contacts)
    gone = await make(contacts)
    await contacts.delete(f"/api/v1/contacts/{gone['id']}")
    ids = [second["id"], str(uuid.uuid4()), first["id"], gone["id"], second["id"]]
    answer = await stub.GetContactsByIds(pb.GetContactsByIdsRequest(ids=ids), timeout=5)
    assert [c.id for c in answer.contacts] == [second["id"], first["id"]]
    too_many = pb.GetContactsByIdsRequest(ids=[str(uuid.uuid4()) for _ in range(1001)])
    assert (
        await code_of(stub.GetContactsByIds(too_many, timeout=5))
        is grpc.StatusCode.INVALID_ARGUMENT
    )
    malformed = pb.GetContactsByIdsRequest(ids=[first["id"], "x"])
    assert (
        await code_of(stub.GetContactsByIds(malformed, timeout=5))
        is grpc.StatusCode.INVALID_ARGUMENT
    )
    exactly = pb.GetContactsByIdsRequest(
        ids=[first["id"]] + [str(uuid.uuid4()) for _ in range(999)]
    )
    assert len((await stub.GetContactsByIds(exactly, timeout=5)).contacts) == 1


async def test_validate_contact(stub, contacts):
    active = await make(contacts)
    inactive = await make(contacts, is_active=False)
    deleted = await make(contacts)
    await contacts.delete(f"/api/v1/contacts/{deleted['id']}")
    cases = {
        active["id"]: "",
        inactive["id"]: "inactive",
        deleted["id"]: "deleted",
        str(uuid.uuid4()): "does not exist",
    }
    for contact_id, reason in cases.items():
        answer = await stub.ValidateContact(pb.ValidateContactRequest(id=contact_id), timeout=5)
        assert answer.is_valid is (reason == "")
        assert reason in answer.error_message


CONTACTS_SERVICE = "lkern.proto.contacts.v1.ContactsService"


async def test_standard_health_service(contacts_service):
    async with channel_to(contacts_service) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "contacts", CONTACTS_SERVICE):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, name


async def grpc_log_line(caplog, method: str) -> str:
    """The server's one line for the call: written as the call ends, which may be
    just after the client has its answer."""

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if method in r.getMessage()]

    async def written() -> bool:
        return bool(lines())

    await eventually(written, timeout=5)
    [line] = lines()
    return line


async def test_health_of_an_unknown_name_is_not_found_and_no_error(contacts_service, caplog):
    async with channel_to(contacts_service) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        with caplog.at_level(logging.INFO):
            call = health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
            assert await code_of(call) is grpc.StatusCode.NOT_FOUND
            line = await grpc_log_line(caplog, "/grpc.health.v1.Health/Check")
    assert "-> NOT_FOUND in " in line
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


class _Refusing(pb_grpc.ContactsServiceServicer):
    async def ValidateContact(self, request, context):
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not for you")


async def test_a_servicers_own_abort_reaches_the_client_with_its_status(caplog):
    server = GrpcServer(
        "refusing",
        "127.0.0.1",
        0,
        [contacts_servicer(_Refusing())],
        secret=DEVELOPMENT_SECRET,
    )
    await server.start()
    try:
        target = f"127.0.0.1:{server.port}"
        async with grpc.aio.insecure_channel(target, interceptors=[WithCredential()]) as channel:
            stub = pb_grpc.ContactsServiceStub(channel)
            with caplog.at_level(logging.INFO):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.ValidateContact(pb.ValidateContactRequest(id="x"), timeout=5)
                line = await grpc_log_line(caplog, "/ValidateContact from orders")
    finally:
        await server.stop(1)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details() == "not for you"
    assert "-> PERMISSION_DENIED in " in line
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_reflection_lists_and_describes_the_services(contacts_service):
    async with channel_to(contacts_service) as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=CONTACTS_SERVICE),
        ]
        answers = [answer async for answer in reflection.ServerReflectionInfo(iter(requests))]
    listed = {service.name for service in answers[0].list_services_response.service}
    assert {CONTACTS_SERVICE, "grpc.health.v1.Health"} <= listed
    files = answers[1].file_descriptor_response.file_descriptor_proto
    described = [descriptor_pb2.FileDescriptorProto.FromString(raw) for raw in files]
    assert any(service.name == "ContactsService" for file in described for service in file.service)


async def test_database_outage_is_unavailable(contacts_service, stub, monkeypatch):
    from lkern.platform.errors import DatabaseUnavailable

    async def down(*_args, **_kwargs):
        raise DatabaseUnavailable()

    monkeypatch.setattr("lkern.contacts.service.get_contact", down)
    request = pb.GetContactRequest(id=str(uuid.uuid4()))
    assert await code_of(stub.GetContact(request, timeout=5)) is grpc.StatusCode.UNAVAILABLE


async def test_bug_is_internal_and_logged(contacts_service, stub, monkeypatch, caplog):
    async def broken(*_args, **_kwargs):
        raise KeyError("oops")

    monkeypatch.setattr("lkern.contacts.service.validate_contact", broken)
    request = pb.ValidateContactRequest(id=str(uuid.uuid4()))
    with caplog.at_level(logging.ERROR):
        assert await code_of(stub.ValidateContact(request, timeout=5)) is grpc.StatusCode.INTERNAL
    assert any("ValidateContact failed" in record.getMessage() for record in caplog.records)


class _Echo(pb_grpc.ContactsServiceServicer):
    async def ValidateContact(self, request, context):
        metadata = dict(context.invocation_metadata())
        seen = f"{metadata['x-lkern-caller']}|{metadata.get('authorization', '')}"
        return pb.ValidateContactResponse(is_valid=True, error_message=seen)


async def test_client_retries_unavailable_until_the_server_is_up():
    port = free_port()
    client = GrpcClient(
        f"127.0.0.1:{port}",
        caller="tester",
        peer="echo",
        secret=DEVELOPMENT_SECRET,
        policy=CallPolicy(deadline_seconds=5),
    )
    server = contacts_server("echo", port, _Echo())

    async def start_late() -> None:
        await asyncio.sleep(0.5)
        await server.start()

    starter = asyncio.create_task(start_late())
    token = current_token.set("the-users-token")  # as while serving a user's request
    try:
        stub = pb_grpc.ContactsServiceStub(client.channel())
        answer = await client.call(stub.ValidateContact, pb.ValidateContactRequest(id="x"))
        # The calling service, proven, and the user it calls for travelled along.
        assert answer.is_valid and answer.error_message == "tester|Bearer the-users-token"
    finally:
        current_token.reset(token)
        await starter
        await server.stop(1)
        await client.close()


async def test_client_gives_up_at_its_deadline():
    client = GrpcClient(
        f"127.0.0.1:{free_port()}",
        caller="t",
        peer="nobody",
        secret=DEVELOPMENT_SECRET,
        policy=CallPolicy(deadline_seconds=0.5),
        unavailable_code="NOBODY_UNAVAILABLE",
    )
    stub = pb_grpc.ContactsServiceStub(client.channel())
    started = asyncio.get_running_loop().time()
    with pytest.raises(DependencyUnavailable) as raised:
        await client.call(stub.ValidateContact, pb.ValidateContactRequest(id="x"))
    assert raised.value.code == "NOBODY_UNAVAILABLE" and raised.value.status == 503
    assert asyncio.get_running_loop().time() - started < 1.5
    await client.close()


async def test_one_trace_id_from_orders_request_to_contacts_grpc(orders, contacts):
    """The trace of an orders request reaches contacts' gRPC log lines and the order's event."""
    contact = await make(contacts)
    stream = io.StringIO()
    handler = build_handler(stream)
    logging.getLogger().addHandler(handler)
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    try:
        response = await orders.post(
            "/api/v1/orders",
            json={"contact_id": contact["id"]},
            headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"},
        )
    finally:
        logging.getLogger().removeHandler(handler)
    assert response.status_code == 201
    lines = [line for line in stream.getvalue().splitlines() if "ValidateContact" in line]
    assert lines and all(f"trace={trace_id}" in line for line in lines), stream.getvalue()[-2000:]
