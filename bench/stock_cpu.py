"""Where a stock change's CPU goes: ``python -m bench.stock_cpu``.

W8's stock mix against inventory and its floor, alternating, with the CPU each
side used per change: the serving process's own, PostgreSQL's (every backend)
and the whole machine's. During the floor's runs the figure for inventory's
process is its relay publishing the floor's events (the floor writes outbox
rows to inventory's database and publishes nothing itself), which is what the
relay costs per event. CPU from ``/proc``, not a sampling profiler: py-spy's
``--nonblocking`` samples count an asyncio loop waiting inside uvloop as busy.
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
class Split:
    side: str
    rate: float
    errors: int
    #: CPU milliseconds per stock change.
    served_ms: float
    postgres_ms: float
    machine_ms: float
    #: Inventory's process, during the run and SETTLE_SECONDS after it.
    inventory_ms: float

    def line(self) -> str:
        return (
            f"{self.side:16s} {self.rate:7.1f}/s  served {self.served_ms:5.2f}  "
            f"postgres {self.postgres_ms:5.2f}  machine {self.machine_ms:5.2f}  "
            f"inventory's process {self.inventory_ms:5.2f} ms/change  errors {self.errors}"
        )


def measure(
    stack: Stack, side: str, locations: Path, *, connections: int, seconds: float, run: int
) -> Split:
    served, inventory = stack.pid(side), stack.pid("inventory")
    before = cpu_seconds(served), postgres_cpu_seconds(), machine_cpu_seconds()
    inventory_before = cpu_seconds(inventory)
    result = run_wrk(
        stack.url(side),
        "stock",
        connections=connections,
        seconds=seconds,
        token=stack.token(),
        input_file=locations,
        run_index=run,
    )
    after = cpu_seconds(served), postgres_cpu_seconds(), machine_cpu_seconds()
    time.sleep(SETTLE_SECONDS)
    changes = max(1, result.requests)
    served_ms, postgres_ms, machine_ms = (
        1000 * (end - start) / changes for start, end in zip(before, after, strict=True)
    )
    return Split(
        side,
        result.requests / result.seconds,
        result.errors,
        served_ms=served_ms,
        postgres_ms=postgres_ms,
        machine_ms=machine_ms,
        inventory_ms=1000 * (cpu_seconds(inventory) - inventory_before) / changes,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stock_cpu", description=__doc__)
    parser.add_argument("--parts", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench-results/stock-cpu"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    ensure_wrk()
    args.out.mkdir(parents=True, exist_ok=True)
    locations = args.out / "part-locations.txt"
    with running_stack(args.out / "work", inventory=True) as stack:
        url = stack.plain_url("inventory")
        run_sync(seed_parts_to(url, args.parts))
        run_sync(sample_locations(url, locations))
        run = 0
        for _ in range(args.rounds):
            for side in ("inventory", "inventory-floor"):
                run += 1
                split = measure(
                    stack,
                    side,
                    locations,
                    connections=args.connections,
                    seconds=args.seconds,
                    run=run,
                )
                print(split.line(), flush=True)


if __name__ == "__main__":
    main()
