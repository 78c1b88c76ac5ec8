"""The pieces of ``lkern serve --workers`` that need no worker process."""

from __future__ import annotations

import asyncio
import socket

import pytest

from lkern.platform.supervisor import READY, WorkerLink, check_port_free, reuseport_socket


def test_a_port_the_workers_share_is_not_free_for_a_second_instance():
    first = reuseport_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = reuseport_socket("127.0.0.1", port)  # another worker's socket: allowed
    try:
        for worker in (first, second):
            worker.listen()  # as each worker's server does once it has started
        with pytest.raises(OSError):
            check_port_free("127.0.0.1", port)
    finally:
        first.close()
        second.close()
    check_port_free("127.0.0.1", port)


async def test_a_worker_reports_ready_and_hears_when_its_parent_is_gone():
    parent, child = socket.socketpair()
    http = reuseport_socket("127.0.0.1", 0)
    # The link owns the descriptors from here, as in a worker.
    link = WorkerLink.parse(f"2/3:{http.detach()}:{child.detach()}")
    assert (link.index, link.count) == (2, 3)
    assert link.name.startswith("worker 2/3 (pid ")
    link.ready()
    assert parent.recv(len(READY)) == READY
    gone = asyncio.Event()
    link.on_parent_exit(asyncio.get_running_loop(), gone.set)
    await asyncio.sleep(0.05)
    assert not gone.is_set()
    parent.close()
    async with asyncio.timeout(5):
        await gone.wait()
    link.control.close()
    link.http.close()
