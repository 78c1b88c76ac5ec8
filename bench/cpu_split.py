"""Where a write's CPU goes: ``python -m bench.cpu_split [--workload stock|create]``.

W8's stock mix (inventory) or W2's creates (contacts) against the service and
its floor, alternating, with the CPU each side used per request: the serving
process's own, PostgreSQL's (every backend) and the whole machine's. During
the floor's runs the figure for the service's process is its relay publishing
the floor's events (the floor writes outbox rows to the service's database and
publishes nothing itself), which is what the relay costs per event. CPU from
``/proc``, not a sampling profiler: py-spy's ``--nonblocking`` samples count an
asyncio loop waiting inside uvloop as busy.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from bench.cpu import cpu_seconds, machine_cpu_seconds, postgres_cpu_seconds
from bench.http_load import ensure_wrk, run_wrk
from bench.seed_parts import sample_locations, seed_parts_to
from bench.stack import Stack, running_stack
from tests.support.postgres import run_sync

#: After a run, how long the relay is given to publish what the run committed.
SETTLE_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class Workload:
    service: str
    floor: str
    #: BENCH_WORKLOAD of bench/load.lua.
    wrk: str


WORKLOADS = {
    "stock": Workload("inventory", "inventory-floor", "stock"),
    "create": Workload("contacts", "floor", "create"),
}


@dataclass(frozen=True, slots=True)
class Split:
    side: str
    rate: float
    errors: int
    #: CPU milliseconds per request.
    served_ms: float
    postgres_ms: float
    machine_ms: float
    #: The service's process, during the run and SETTLE_SECONDS after it.
    service_ms: float

    def line(self) -> str:
        return (
            f"{self.side:16s} {self.rate:7.1f}/s  served {self.served_ms:5.2f}  "
            f"postgres {self.postgres_ms:5.2f}  machine {self.machine_ms:5.2f}  "
            f"service's process {self.service_ms:5.2f} ms/request  errors {self.errors}"
        )


def measure(
    stack: Stack,
    workload: Workload,
    side: str,
    inputs: Path | None,
    *,
    connections: int,
    seconds: float,
    run: int,
) -> Split:
    served, service = stack.pid(side), stack.pid(workload.service)
    before = cpu_seconds(served), postgres_cpu_seconds(), machine_cpu_seconds()
    service_before = cpu_seconds(service)
    result = run_wrk(
        stack.url(side),
        workload.wrk,
        connections=connections,
        seconds=seconds,
        token=stack.token(),
        input_file=inputs,
        run_index=run,
    )
    after = cpu_seconds(served), postgres_cpu_seconds(), machine_cpu_seconds()
    time.sleep(SETTLE_SECONDS)
    requests = max(1, result.requests)
    served_ms, postgres_ms, machine_ms = (
        1000 * (end - start) / requests for start, end in zip(before, after, strict=True)
    )
    return Split(
        side,
        result.requests / result.seconds,
        result.errors,
        served_ms=served_ms,
        postgres_ms=postgres_ms,
        machine_ms=machine_ms,
        service_ms=1000 * (cpu_seconds(service) - service_before) / requests,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_split", description=__doc__)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="stock")
    parser.add_argument("--parts", type=int, default=100_000, help="seeded for stock")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(".bench/cpu-split"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    ensure_wrk()
    args.out.mkdir(parents=True, exist_ok=True)
    workload = WORKLOADS[args.workload]
    inputs: Path | None = None
    with running_stack(args.out / "work", inventory=workload.service == "inventory") as stack:
        if workload.wrk == "stock":
            url = stack.plain_url("inventory")
            run_sync(seed_parts_to(url, args.parts))
            inputs = args.out / "part-locations.txt"
            run_sync(sample_locations(url, inputs))
        run = 0
        for _ in range(args.rounds):
            for side in (workload.service, workload.floor):
                run += 1
                split = measure(
                    stack,
                    workload,
                    side,
                    inputs,
                    connections=args.connections,
                    seconds=args.seconds,
                    run=run,
                )
                print(split.line(), flush=True)


if __name__ == "__main__":
    main()
