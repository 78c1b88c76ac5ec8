"""``lkern serve SERVICE --workers N``: several processes behind one HTTP and one gRPC port,
supervised by the one the user started."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import grpc
import httpx
import pytest

from lkern.platform.grpc import credentials
from lkern.platform.grpc.metadata import CALLER_SERVICE, SERVICE_CREDENTIAL
from lkern.platform.settings import DEVELOPMENT_SECRET
from lkern.proto.contacts.v1 import contacts_pb2, contacts_pb2_grpc
from tests.conftest import new_database_url
from tests.support.processes import free_port
from tests.support.tokens import bearer
from tests.system.conftest import ServedService, start

pytestmark = pytest.mark.slow

GRACE_SECONDS = 5
STARTING_SECONDS = 120
LISTENING = re.compile(r"contacts worker (\d)/2 \(pid (\d+)\) listening on http://")
SERVICE_INFO_PID = re.compile(r'lkern_service_info\{[^}]*pid="(\d+)"')


def serve_workers(request: pytest.FixtureRequest, tmp_path: Path, env: dict[str, str]):
    url = new_database_url(request, "postgres", tmp_path)
    service = start(
        "contacts",
        tmp_path,
        {
            "LKERN_CONTACTS_DATABASE_URL": url,
            "LKERN_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
            **env,
        },
        workers=2,
    )
    try:
        # The workers start one after the other, on a machine the suite keeps busy.
        service.process.wait_healthy(service.base_url, timeout=STARTING_SECONDS)
    except BaseException:
        service.process.stop()
        raise
    return service


def workers_listening(
    service: ServedService, count: int = 2, timeout: float = STARTING_SECONDS
) -> list[int]:
    """The pids of the workers that said they listen, once ``count`` lines say so
    (a restarted worker says so again, under its new pid)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [int(pid) for _, pid in LISTENING.findall(service.process.output())]
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise TimeoutError(f"not {count} workers listening:\n{service.process.output()}")


def logged(service: ServedService, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in service.process.output():
        if time.monotonic() > deadline:
            raise TimeoutError(f"never logged {text!r}:\n{service.process.output()}")
        time.sleep(0.05)


def answering_pids(base_url: str, attempts: int = 200) -> set[int]:
    """Which processes answer ``/metrics``, each asked on a new connection (the
    kernel picks a worker per connection)."""
    pids: set[int] = set()
    for _ in range(attempts):
        with httpx.Client() as client:  # a new connection each time
            body = client.get(f"{base_url}/metrics").text
        pids.update(int(pid) for pid in SERVICE_INFO_PID.findall(body))
        if len(pids) == 2:
            break
    return pids


def get_contact(grpc_port: str, contact_id: str) -> contacts_pb2.Contact:
    method = "/lkern.proto.contacts.v1.ContactsService/GetContact"
    metadata = (
        (CALLER_SERVICE, "tests"),
        (SERVICE_CREDENTIAL, credentials.issue(DEVELOPMENT_SECRET, "tests", method)),
    )
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = contacts_pb2_grpc.ContactsServiceStub(channel)
        response = stub.GetContact(
            contacts_pb2.GetContactRequest(id=contact_id), metadata=metadata, timeout=10
        )
    return response.contact


def exit_code(service: ServedService, timeout: float = 60) -> int | None:
    """The supervisor's exit code once it exits by itself (stopped, and None, if it does not)."""
    assert service.process.process is not None
    try:
        return service.process.process.wait(timeout)
    except subprocess.TimeoutExpired:
        service.process.stop(signal.SIGKILL)
        return None


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_two_workers_answer_on_one_port_and_stop_together_on_sigterm(
    request, tmp_path: Path, identity_url: dict[str, str]
):
    service = serve_workers(request, tmp_path, identity_url)
    try:
        pids = workers_listening(service)
        assert len(set(pids)) == 2
        assert service.process.process is not None
        assert service.process.process.pid not in pids  # the supervisor serves nothing

        # Both workers answer on the one HTTP port.
        assert answering_pids(service.base_url) == set(pids)
        created = httpx.post(
            f"{service.base_url}/api/v1/contacts",
            json={"name": "Shared Port", "email": "shared@example.com"},
            headers=bearer(),
        )
        assert created.status_code == 201, created.text

        # And on the one gRPC port: every channel (a connection each) gets its answer.
        grpc_port = service.env["LKERN_CONTACTS_GRPC_PORT"]
        for _ in range(6):
            assert get_contact(grpc_port, created.json()["id"]).name == "Shared Port"
    finally:
        elapsed = service.process.stop(signal.SIGTERM, timeout=60)
    output = service.process.output()
    assert service.process.returncode == 0, output
    assert elapsed < GRACE_SECONDS
    assert output.count("contacts stopped") == 2
    assert "all workers stopped (exit codes [0, 0])" in output
    assert all(gone(pid) for pid in pids)


def test_a_killed_worker_is_replaced_and_the_other_answers_meanwhile(
    request, tmp_path: Path, identity_url: dict[str, str]
):
    service = serve_workers(request, tmp_path, identity_url)
    try:
        first, second = workers_listening(service)
        os.kill(first, signal.SIGKILL)
        logged(service, "contacts worker 1 exited with -9; restarting it")
        # Until the replacement listens, every connection goes to the other worker.
        assert answering_pids(service.base_url, attempts=20) == {second}
        *_, replacement = workers_listening(service, count=3)
        assert replacement not in (first, second)
        assert answering_pids(service.base_url) == {replacement, second}
    finally:
        service.process.stop(signal.SIGTERM, timeout=60)
    assert service.process.returncode == 0, service.process.output()


def test_a_worker_that_cannot_start_stops_the_supervisor_with_an_error(tmp_path: Path):
    # Nothing listens on port 9: the first worker's migration fails before it is ready.
    service = start(
        "contacts",
        tmp_path,
        {
            "LKERN_CONTACTS_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:9/none",
            "LKERN_DB_CONNECT_TIMEOUT": "2",
        },
        workers=2,
    )
    assert exit_code(service) == 1
    output = service.process.output()
    assert re.search(r"contacts worker 1 exited with \d+ before it was ready", output), output
    assert "worker 2/2 started" not in output


def test_a_taken_port_is_refused_before_any_worker_starts(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = start(
            "contacts",
            tmp_path,
            {"LKERN_CONTACTS_PORT": str(port), "LKERN_CONTACTS_GRPC_PORT": str(free_port())},
            workers=2,
        )
        assert exit_code(service) == 1
    output = service.process.output()
    assert "cannot listen" in output
    assert "started (pid" not in output
