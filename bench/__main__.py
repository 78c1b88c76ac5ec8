"""``python -m bench``: measure L-KERN's main paths against the floor, at growing data sizes.

Starts PostgreSQL (or uses the machine's), tansu, identity, contacts and
orders (``lkern serve``, production mode) and the floor app, then for each
size seeds contacts and runs W1-W3 at each connection count, L-KERN and the
floor alternately, then W4 (events) and W5 (gRPC). Prints the tables and
writes them, with the query plans, to the output directory.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import subprocess
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg

from bench import report
from bench.events import run_events, wait_drained
from bench.floor import app as floor
from bench.http_load import WORKLOADS, HttpResult, ensure_wrk, run_wrk
from bench.seed import sample_ids, search_terms, seed_to
from bench.stack import SERVICE_SECRET, Stack, running_stack
from tests.support.postgres import run_sync

logger = logging.getLogger("bench")
#: W2's e-mails and phones derive from the run's number: unique over the whole session.
RUNS = itertools.count()
WARMUP_SECONDS = 3.0


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="contacts per round")
    parser.add_argument("--connections", default="64,256", help="wrk connection counts")
    parser.add_argument("--seconds", type=float, default=15, help="length of one load run")
    parser.add_argument("--workloads", default="W1,W2,W3,W4,W5")
    parser.add_argument(
        "--event-rates", default="500,750,1000,1500,2000", help="W4 steps, events/s"
    )
    parser.add_argument("--out", type=Path, default=Path(".bench"), help="results directory")
    parser.add_argument(
        "--smoke", action="store_true", help="a few seconds of everything: checks the harness"
    )
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.connections, args.seconds, args.event_rates = "2000", "16", 1, "200"
    return args


async def wait_quiet(url: str, timeout: float = 300) -> float:
    """Wait until no client's query runs in the database for a second (autovacuum may);
    returns the seconds waited."""
    connection = await asyncpg.connect(url)
    began = time.monotonic()
    quiet_since: float | None = None
    try:
        while time.monotonic() - began < timeout:
            active = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()"
            )
            now = time.monotonic()
            if active:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= 1:
                break
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    return time.monotonic() - began


def _explain(stack: Stack, size: int, out: Path) -> None:
    """The plans of W1's and W3's statements at this size, with timings (EXPLAIN ANALYZE)."""
    url = stack.plain_url("contacts")
    ids = (out / "ids.txt").read_text().split()
    statements = {
        "W1": (floor.GET_SQL, (uuid.UUID(ids[0]),)),
        "W3 count": (floor.COUNT_SQL, ("%Novak%",)),
        "W3 page": (floor.PAGE_SQL, ("%Novak%", 50, 0)),
    }

    async def explain() -> dict[str, str]:
        connection = await asyncpg.connect(url)
        try:
            plans = {}
            for name, (sql, params) in statements.items():
                rows = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *params)
                plans[name] = "\n".join(row[0] for row in rows)
            return plans
        finally:
            await connection.close()

    plans = run_sync(explain())
    (out / f"explain-{size}.txt").write_text(
        "".join(f"-- {name}\n{plan}\n\n" for name, plan in plans.items())
    )


def _run(
    stack: Stack,
    name: str,
    target: str,
    token: str,
    input_file: Path | None,
    connections: int,
    seconds: float,
) -> HttpResult:
    """One wrk run of workload ``name`` against ``target`` (lkern, floor or layers)."""
    result = run_wrk(
        stack.url("contacts" if target == "lkern" else target),
        WORKLOADS[name],
        connections=connections,
        seconds=seconds,
        token="" if target == "floor" else token,
        input_file=input_file,
        run_index=next(RUNS),
    )
    # Requests still queued when wrk stopped must not spill into the next run.
    waited = run_sync(wait_quiet(stack.plain_url("contacts")))
    if waited > 1:
        logger.info("%s %s: the database went quiet %.0fs after the run", name, target, waited)
    return result


def _http_round(
    stack: Stack, size: int, connections: list[int], seconds: float, workloads: list[str], out: Path
) -> list[dict[str, Any]]:
    rows = []
    token = stack.token()
    for name in ("W1", "W3", "W2"):  # writes last: they grow the table
        if name not in workloads:
            continue
        workload = WORKLOADS[name]
        input_file = {"get": out / "ids.txt", "search": out / "terms.txt"}.get(workload)
        # W1 also against the floor with L-KERN's request layers (bench/floor/layers.py).
        targets = ("lkern", "floor", "layers") if name == "W1" else ("lkern", "floor")
        for target in targets:
            # Unmeasured: a run straight after start-up or seeding would also
            # time opening pools, preparing statements and warming caches.
            _run(
                stack, name, target, token, input_file, connections[0], min(seconds, WARMUP_SECONDS)
            )
        for count in connections:
            results = {
                target: _run(stack, name, target, token, input_file, count, seconds)
                for target in targets
            }
            row = {
                "size": size,
                "workload": name,
                "connections": count,
            } | {target: asdict(run) | {"rate": run.rate} for target, run in results.items()}
            rows.append(row)
            print(report.http_line(row), flush=True)
            if "layers" in row:
                print(report.layers_line(row), flush=True)
    return rows


def _grpc(stack: Stack, seconds: float, out: Path, concurrency: int = 32) -> dict[str, Any]:
    contacts = stack.services["contacts"]
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.grpc_load",
            f"127.0.0.1:{contacts.grpc_port}",
            SERVICE_SECRET,
            str(out / "ids.txt"),
            str(seconds),
            str(concurrency),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    result["concurrency"] = concurrency
    return result


def _pipeline_rounds(
    stack: Stack,
    args: argparse.Namespace,
    workloads: list[str],
    results: dict[str, Any],
    out: Path,
) -> None:
    """W4 at rising rates until the backlog grows, then W5."""
    if "W4" in workloads:
        waited = run_sync(wait_drained(stack.plain_url("contacts"), stack.plain_url("orders")))
        logger.info("event pipeline drained after %.0fs", waited)
        results["events"] = []
        print(report.EVENTS_HEADER, flush=True)
        for rate in (int(r) for r in args.event_rates.split(",")):
            outcome = run_sync(
                run_events(
                    stack.plain_url("contacts"),
                    stack.plain_url("orders"),
                    rate,
                    max(args.seconds, 2),
                )
            )
            results["events"].append(asdict(outcome) | {"sustained": outcome.sustained})
            print(report.events_line(outcome), flush=True)
            if not outcome.sustained:
                break
            time.sleep(2)
    if "W5" in workloads:
        results["grpc"] = _grpc(stack, args.seconds, out)
        print(report.grpc_line(results["grpc"]), flush=True)


def main() -> None:
    args = _parse()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ensure_wrk()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    sizes = [int(size) for size in args.sizes.split(",")]
    connections = [int(count) for count in args.connections.split(",")]
    workloads = args.workloads.split(",")
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "http": []}
    # The smoke run shares the machine's PostgreSQL with the test suite: small pools.
    with running_stack(out / "work", pool_size=3 if args.smoke else 10) as stack:
        contacts_url = stack.plain_url("contacts")
        search_terms(out / "terms.txt")
        for size in sizes:
            started = time.perf_counter()
            added = run_sync(seed_to(contacts_url, size))
            logger.info(
                "seeded %d contacts (now %d) in %.1fs", added, size, time.perf_counter() - started
            )
            run_sync(sample_ids(contacts_url, out / "ids.txt"))
            _explain(stack, size, out)
            if size == sizes[0]:
                # Events and gRPC first, while no earlier workload's leftovers (autovacuum
                # of a million seeded rows, W2's events) share the two cores with them.
                _pipeline_rounds(stack, args, workloads, results, out)
                print("\n" + report.HTTP_HEADER, flush=True)
            results["http"].extend(
                _http_round(stack, size, connections, args.seconds, workloads, out)
            )
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "results.md").write_text(report.markdown(results))
    print(f"\nresults: {out / 'results.md'} and {out / 'results.json'}")
    errors = sum(
        row[target]["errors"]
        for row in results["http"]
        for target in ("lkern", "floor", "layers")
        if target in row
    )
    errors += int(results.get("grpc", {}).get("errors", 0))
    if errors:
        print(f"{errors} requests failed (errors, timeouts or non-2xx answers)")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
