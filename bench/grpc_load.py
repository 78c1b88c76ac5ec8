"""W5: GetContact calls per second, from a separate process.

Run as ``python -m bench.grpc_load TARGET SECRET IDS_FILE SECONDS CONCURRENCY``; prints
one JSON line. The client keeps a fixed set of calls in flight over one
channel and sends a precomputed service credential, so it spends as little
CPU as a gRPC client can; its own CPU time is reported to show it was not
the limit.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import sys
import time
from pathlib import Path

import grpc

from bench.stats import percentile
from lkern.platform.grpc import credentials
from lkern.platform.grpc.metadata import CALLER_SERVICE, SERVICE_CREDENTIAL
from lkern.proto.contacts.v1 import contacts_pb2, contacts_pb2_grpc


async def _load(
    target: str, secret: str, ids: list[str], seconds: float, concurrency: int
) -> dict[str, float]:
    credential = credentials.issue(
        secret, "bench", "/lkern.proto.contacts.v1.ContactsService/GetContact"
    )
    metadata = ((CALLER_SERVICE, "bench"), (SERVICE_CREDENTIAL, credential))
    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = contacts_pb2_grpc.ContactsServiceStub(channel)
        await stub.GetContact(
            contacts_pb2.GetContactRequest(id=ids[0]), metadata=metadata, timeout=5
        )
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    await stub.GetContact(
                        contacts_pb2.GetContactRequest(id=random.choice(ids)),
                        metadata=metadata,
                        timeout=30,
                    )
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    latencies_ms = sorted(seconds * 1000 for seconds in latencies)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)

    return {
        "calls": len(latencies),
        "seconds": elapsed,
        "errors": errors,
        "p50_ms": percentile(latencies_ms, 0.50),
        "p99_ms": percentile(latencies_ms, 0.99),
        "client_cpu_share": cpu / elapsed,
    }


def main() -> None:
    target, secret, ids_file, seconds, concurrency = sys.argv[1:6]
    ids = Path(ids_file).read_text().split()
    result = asyncio.run(_load(target, secret, ids, float(seconds), int(concurrency)))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
