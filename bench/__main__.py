"""``python -m bench``: measure L-KERN's main paths against the floor, at growing data sizes.

Starts PostgreSQL (or uses the machine's), tansu, identity, contacts and
orders (``lkern serve``, production mode) and the floor app, then for each
size seeds contacts and runs W1-W3 (W3 a broad search, W3s a selective one:
part of one e-mail address) at each connection count, L-KERN and the floor
alternately, then W4 (events) and W5 (gRPC). With W6 or W7 it also
starts issues with an S3 server (moto) and issues' floor, seeds issues to
each of ``--issue-sizes`` and runs W6 (issues list with search), then W7
(1 MiB uploads and downloads) with the issues replica's memory. With W8 it
starts inventory and its floor, seeds parts (with boxes and stock) to each of
``--part-sizes`` and runs W8: the part search, then a stock add/remove mix; after
the last size it times an import of 10,000 CSV rows through the route and the
command. With ``--export``, W1 runs once more per size with contacts exporting
every span (100 % sampling) over OTLP to a sink in the bench's process.
Prints the tables and writes them, with the query plans, to the output
directory.
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
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from aiobotocore.session import get_session

from bench import events_floor, report
from bench.events import WARMUP_SECONDS as EVENTS_WARMUP_SECONDS
from bench.events import commit_ceiling, run_events, wait_drained
from bench.floor import app as floor
from bench.floor import inventory as inventory_floor
from bench.floor import issues as issues_floor
from bench.http_load import WORKLOADS, HttpResult, ensure_wrk, run_wrk
from bench.imports_load import ROWS as IMPORT_ROWS
from bench.imports_load import import_lines, measure_imports
from bench.memory import PeakRss
from bench.profile import recorded
from bench.seed import sample_ids, sample_selective_terms, search_terms, seed_to
from bench.seed_issues import issue_search_terms, seed_issues_to
from bench.seed_parts import part_search_terms, sample_locations, seed_parts_to
from bench.stack import BUCKET, SERVICE_SECRET, Stack, restart, running_stack
from tests.support.otlp import otlp_receiver
from tests.support.postgres import run_sync
from tests.support.s3 import CREDENTIALS

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef

logger = logging.getLogger("bench")
#: W2's e-mails and phones derive from the run's number: unique over the whole session.
RUNS = itertools.count()
PROFILE_RUNS = itertools.count(1)
WARMUP_SECONDS = 3.0
#: With --profile: where each measured L-KERN run's py-spy samples go (bench/profile.py).
PROFILES: Path | None = None
#: How long the database must stay idle after a run before the next one starts.
QUIET_SECONDS = 1.0
#: W4's floor reads as L-KERN's consumers do by default (platform settings).
EVENTS_FETCH_WAIT_MS = 20
EVENTS_MAX_RECORDS = 500
#: W5 pairs (L-KERN, then its floor) per run.
GRPC_ROUNDS = 3
CONTACTS_WORKLOADS = {"W1", "W2", "W3", "W3s", "W4", "W5"}
ISSUES_WORKLOADS = {"W6", "W7"}
INVENTORY_WORKLOADS = {"W8"}
MODES = ("upload", "download")
#: Where each wrk workload runs: the service, and the floor it is compared with.
SERVICE_OF = {"W6": "issues", "W8 search": "inventory", "W8 stock": "inventory"}
FLOOR_OF = {"W6": "issues-floor", "W8 search": "inventory-floor", "W8 stock": "inventory-floor"}
#: Each wrk workload's input file in the output directory.
INPUTS = {
    "get": "ids.txt",
    "search": "terms.txt",
    "issues": "issue-terms.txt",
    "parts": "part-terms.txt",
    "stock": "part-locations.txt",
}
#: Workloads that share a wrk workload with another but read their own input.
INPUT_OF = {"W3s": "selective-terms.txt"}


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="contacts per round")
    parser.add_argument("--connections", default="64,256", help="wrk connection counts")
    parser.add_argument("--seconds", type=float, default=15, help="length of one load run")
    parser.add_argument("--workloads", default="W1,W2,W3,W3s,W4,W5,W6,W7,W8")
    parser.add_argument("--issue-sizes", default="100000", help="issues per W6 round")
    parser.add_argument("--part-sizes", default="10000,100000", help="parts per W8 round")
    parser.add_argument(
        "--file-connections",
        default="8,20",
        help="W7's uploads or downloads in flight; the replica's memory is read at the last",
    )
    parser.add_argument(
        "--event-rates", default="500,750,1000,1500,2000", help="W4 steps, events/s"
    )
    parser.add_argument(
        "--batched-event-rates",
        default="2000,3000,4000",
        help="W4 steps with --events-per-commit events in each commit, events/s ('': none)",
    )
    parser.add_argument(
        "--events-per-commit", type=int, default=4, help="events in one commit of a batched step"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="W1 also against contacts served by this many worker processes (1: not)",
    )
    parser.add_argument("--out", type=Path, default=Path(".bench"), help="results directory")
    parser.add_argument(
        "--smoke", action="store_true", help="a few seconds of everything: checks the harness"
    )
    parser.add_argument(
        "--export",
        action="store_true",
        help="W1 once more with contacts exporting every span (100%% sampling) over OTLP "
        "to a local sink",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample L-KERN's process in every measured HTTP run with py-spy; the summaries "
        "go to OUT/profiles/*.txt",
    )
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.connections, args.seconds, args.event_rates = "2000", "16", 1, "200"
        args.batched_event_rates = "400"
        args.issue_sizes, args.file_connections, args.part_sizes = "2000", "4", "2000"
        args.export = True
    return args


async def wait_quiet(url: str, timeout: float = 300) -> float:
    """Wait until no client's query runs in the database for ``QUIET_SECONDS``
    (autovacuum may); returns the seconds waited."""
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
            elif now - quiet_since >= QUIET_SECONDS:
                break
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    return time.monotonic() - began


def _write_plans(url: str, statements: dict[str, tuple[str, tuple[Any, ...]]], path: Path) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement, written to ``path``."""

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
    path.write_text("".join(f"-- {name}\n{plan}\n\n" for name, plan in plans.items()))


def _explain(stack: Stack, size: int, out: Path) -> None:
    """The plans of W1's and W3's statements at this size, with timings (EXPLAIN ANALYZE)."""
    ids = (out / "ids.txt").read_text().split()
    statements = {
        "W1": (floor.GET_SQL, (uuid.UUID(ids[0]),)),
        "W3 count": (floor.COUNT_SQL, ("%Novak%",)),
        "W3 page": (floor.PAGE_SQL, ("%Novak%", 50, 0)),
    }
    _write_plans(stack.plain_url("contacts"), statements, out / f"explain-{size}.txt")


def _explain_issues(stack: Stack, size: int, out: Path) -> None:
    """The plans of W6's count and page at this size, for its first search term."""
    pattern = f"%{(out / 'issue-terms.txt').read_text().split()[0]}%"
    statements = {
        "W6 count": (issues_floor.COUNT_SQL, (pattern,)),
        "W6 page": (issues_floor.PAGE_SQL, (pattern, 51, 0)),
    }
    _write_plans(stack.plain_url("issues"), statements, out / f"explain-issues-{size}.txt")


def _run(
    stack: Stack,
    name: str,
    target: str,
    token: str,
    input_file: Path | None,
    connections: int,
    seconds: float,
    *,
    measured: bool = True,
) -> HttpResult:
    """One wrk run of workload ``name`` against ``target`` (lkern, floor or layers)."""
    service = SERVICE_OF.get(name, "contacts")
    served = {"lkern": service, "workers": f"{service}-workers"}
    profile: AbstractContextManager[None] = nullcontext()
    if PROFILES is not None and target == "lkern" and measured:
        label = f"{name.replace(' ', '-')}-{service}-{connections}c-{next(PROFILE_RUNS)}"
        profile = recorded(stack.pid(service), PROFILES / f"{label}.raw", seconds)
    with profile:
        result = run_wrk(
            stack.url(served.get(target) or FLOOR_OF.get(name, target)),
            WORKLOADS[name],
            connections=connections,
            seconds=seconds,
            token="" if target == "floor" else token,
            input_file=input_file,
            run_index=next(RUNS),
        )
    # Requests still queued when wrk stopped must not spill into the next run.
    waited = run_sync(wait_quiet(stack.plain_url(service)))
    if waited > 1:
        logger.info("%s %s: the database went quiet %.0fs after the run", name, target, waited)
    return result


def _http_round(
    stack: Stack,
    size: int,
    connections: list[int],
    seconds: float,
    workloads: list[str],
    out: Path,
    *,
    warm_up: bool = True,
    label: str = "",
    layers: bool = True,
) -> list[dict[str, Any]]:
    rows = []
    token = stack.token()
    # Writes after reads: they grow the tables.
    for name in ("W1", "W3", "W3s", "W2", "W6", "W8 search", "W8 stock"):
        if name not in workloads:
            continue
        workload = WORKLOADS[name]
        input_name = INPUT_OF.get(name) or INPUTS.get(workload)
        input_file = out / input_name if input_name else None
        # W1 also against the floor with L-KERN's request layers (bench/floor/layers.py)
        # and, when it runs, contacts served by several workers.
        targets: tuple[str, ...] = ("lkern", "floor")
        if name == "W1" and layers:
            targets += ("layers",)
            if "contacts-workers" in stack.services:
                targets += ("workers",)
        for target in targets if warm_up else ():
            # Unmeasured: a run straight after start-up or seeding would also
            # time opening pools, preparing statements and warming caches.
            _run(
                stack,
                name,
                target,
                token,
                input_file,
                connections[0],
                min(seconds, WARMUP_SECONDS),
                measured=False,
            )
        for count in connections:
            results = {
                target: _run(stack, name, target, token, input_file, count, seconds)
                for target in targets
            }
            row = {
                "size": size,
                "workload": name + label,
                "connections": count,
            } | {target: asdict(run) | {"rate": run.rate} for target, run in results.items()}
            rows.append(row)
            print(report.http_line(row), flush=True)
            if "layers" in row:
                print(report.layers_line(row), flush=True)
            if "workers" in row:
                print(report.workers_line(row, stack.workers), flush=True)
    return rows


def _exported_round(
    stack: Stack, size: int, connections: list[int], seconds: float, out: Path
) -> list[dict[str, Any]]:
    """W1 with contacts exporting every span over OTLP/HTTP to a sink in this process
    (which only counts what it is sent), through the standard variables; then
    contacts is served again without them."""
    with otlp_receiver(keep=False) as sink:
        restart(
            stack,
            "contacts",
            {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint, "OTEL_TRACES_SAMPLER": "always_on"},
        )
        try:
            rows = _http_round(
                stack, size, connections, seconds, ["W1"], out, label="+otlp", layers=False
            )
        finally:
            restart(stack, "contacts", {})
        logger.info("the sink took %d exports, %.1f MB", sink.requests, sink.bytes / 1e6)
    for row in rows:
        row["exported_bytes"] = sink.bytes
    return rows


def _grpc(
    stack: Stack, target: str, seconds: float, out: Path, concurrency: int = 32
) -> dict[str, Any]:
    """One W5 run against contacts ("lkern") or its gRPC floor ("floor")."""
    served = stack.services["contacts"] if target == "lkern" else stack.floors["grpc-floor"]
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.grpc_load",
            f"127.0.0.1:{served.grpc_port}",
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
        steps = [(int(rate), 1) for rate in args.event_rates.split(",") if rate]
        batched = [
            (int(rate), args.events_per_commit)
            for rate in args.batched_event_rates.split(",")
            if rate
        ]
        for ladder in (steps, batched):
            for rate, per_commit in ladder:
                outcome = run_sync(
                    run_events(
                        stack.plain_url("contacts"),
                        stack.plain_url("orders"),
                        rate,
                        max(args.seconds, 2),
                        warmup=1.0 if args.smoke else EVENTS_WARMUP_SECONDS,
                        per_commit=per_commit,
                    )
                )
                results["events"].append(asdict(outcome) | {"sustained": outcome.sustained})
                print(report.events_line(outcome), flush=True)
                time.sleep(2)
                if not outcome.sustained:
                    break
        # What one event per commit can reach at all: PostgreSQL's commits with NOTIFY.
        ceiling = run_sync(commit_ceiling(stack.plain_url("contacts"), 1.0 if args.smoke else 3.0))
        results["commit_ceiling"] = asdict(ceiling)
        print(report.ceiling_line(ceiling), flush=True)
        # The floor on the same broker at the same rates: plain aiokafka, no database.
        rates = sorted({event["target_rate"] for event in results["events"]})
        floor_results = run_sync(
            events_floor.measure(
                stack.broker.bootstrap,
                rates,
                max(args.seconds, 2),
                topics=6,
                wait_ms=EVENTS_FETCH_WAIT_MS,
                max_records=EVENTS_MAX_RECORDS,
            )
        )
        results["events_floor"] = [asdict(result) for result in floor_results]
        for result in floor_results:
            print(report.events_floor_line(result), flush=True)
    if "W5" in workloads:
        # Unmeasured first: channels, pools and prepared statements of both sides.
        for target in ("lkern", "floor") if not args.smoke else ():
            _grpc(stack, target, min(args.seconds, WARMUP_SECONDS), out)
        # L-KERN and its floor in turn, a few times: on a shared machine one pair
        # may catch a neighbour's burst. The pair of the median ratio is the figure.
        rounds: list[dict[str, Any]] = []
        for _ in range(1 if args.smoke else GRPC_ROUNDS):
            pair = {side: _grpc(stack, side, args.seconds, out) for side in ("lkern", "floor")}
            rounds.append(pair | {"ratio": report.grpc_ratio(pair["lkern"], pair["floor"])})
            print(report.grpc_line(pair["lkern"], pair["floor"]), flush=True)
        median = sorted(rounds, key=lambda pair: pair["ratio"])[len(rounds) // 2]
        results["grpc"], results["grpc_floor"] = median["lkern"], median["floor"]
        results["grpc_rounds"] = rounds


def _files_run(
    stack: Stack, target: str, token: str, ids: Path, concurrency: int, seconds: float
) -> dict[str, dict[str, Any]]:
    """One W7 run, uploads then downloads, against issues or issues' floor."""
    settings = {
        "base_url": stack.url("issues" if target == "lkern" else "issues-floor"),
        "token": token if target == "lkern" else "",
        "input": str(ids),
        "concurrency": concurrency,
        "seconds": seconds,
    }
    completed = subprocess.run(
        [sys.executable, "-m", "bench.files_load", json.dumps(settings)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, dict[str, Any]] = json.loads(completed.stdout.strip().splitlines()[-1])
    for figures in result.values():
        figures["rate"] = figures["requests"] / figures["seconds"] if figures["seconds"] else 0.0
    return result


async def _empty_bucket(endpoint: str) -> int:
    """Delete every object of the bench's bucket (moto holds them in memory)."""
    removed = 0
    async with get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    ) as s3:
        while True:
            listed = await s3.list_objects_v2(Bucket=BUCKET, MaxKeys=1000)
            keys: list[ObjectIdentifierTypeDef] = [
                {"Key": item["Key"]} for item in listed.get("Contents", [])
            ]
            if not keys:
                return removed
            await s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})
            removed += len(keys)


def _files_round(
    stack: Stack, args: argparse.Namespace, results: dict[str, Any], out: Path
) -> None:
    """W7 at each concurrency, L-KERN and the floor in turn; the memory of each side
    while the last one's uploads run."""
    assert stack.s3 is not None
    token = stack.token()
    counts = [int(count) for count in args.file_connections.split(",")]
    ids = out / "issue-ids.txt"
    # Unmeasured: pools, S3 connections and caches; the smoke run only checks the harness.
    for target in ("lkern", "floor") if not args.smoke else ():
        _files_run(stack, target, token, ids, counts[0], WARMUP_SECONDS)
    run_sync(_empty_bucket(stack.s3.endpoint))
    print("\n" + report.FILES_HEADER, flush=True)
    for count in counts:
        rows = {mode: {"workload": f"W7 {mode}", "connections": count} for mode in MODES}
        for target in ("lkern", "floor"):
            pid = stack.pid("issues" if target == "lkern" else "issues-floor")
            # The downloads hold nothing in the replica: the peak is the uploads'.
            with PeakRss(pid) as memory:
                run = _files_run(stack, target, token, ids, count, args.seconds)
            if count == counts[-1]:
                results["files_memory"][target] = asdict(memory.result) | {"uploads": count}
            for mode in MODES:
                rows[mode][target] = run[mode]
            run_sync(_empty_bucket(stack.s3.endpoint))
            if not args.smoke:  # nothing measured there can spill over
                run_sync(wait_quiet(stack.plain_url("issues")))
        for mode in MODES:
            results["files"].append(rows[mode])
            print(report.files_line(rows[mode]), flush=True)
    print(report.memory_line(results["files_memory"]), flush=True)


def _issues_rounds(
    stack: Stack,
    args: argparse.Namespace,
    workloads: list[str],
    results: dict[str, Any],
    out: Path,
) -> None:
    """Seed issues to each size and run W6 there; W7 after the last size."""
    url = stack.plain_url("issues")
    issue_search_terms(out / "issue-terms.txt")
    connections = [int(count) for count in args.connections.split(",")]
    results |= {"issues": [], "files": [], "files_memory": {}}
    for size in (int(size) for size in args.issue_sizes.split(",")):
        started = time.perf_counter()
        added = run_sync(seed_issues_to(url, size))
        seconds = time.perf_counter() - started
        logger.info("seeded %d issues (now %d) in %.1fs", added, size, seconds)
        if "W6" in workloads:
            _explain_issues(stack, size, out)
            print("\n" + report.HTTP_HEADER.replace("     size", "   issues"), flush=True)
            results["issues"].extend(
                _http_round(
                    stack, size, connections, args.seconds, ["W6"], out, warm_up=not args.smoke
                )
            )
    if "W7" in workloads:
        run_sync(sample_ids(url, out / "issue-ids.txt", table="issues"))
        _files_round(stack, args, results, out)


def _explain_parts(stack: Stack, size: int, out: Path) -> None:
    """The plans of W8's count, page and locations at this size, for its first term."""
    pattern = f"%{(out / 'part-terms.txt').read_text().split()[0]}%"
    statements = {
        "W8 count": (inventory_floor.COUNT_SQL, (pattern,)),
        "W8 page": (inventory_floor.PAGE_SQL, (pattern, 51, 0)),
    }
    _write_plans(stack.plain_url("inventory"), statements, out / f"explain-parts-{size}.txt")


def _inventory_rounds(
    stack: Stack, args: argparse.Namespace, results: dict[str, Any], out: Path
) -> None:
    """Seed parts to each size and run W8 there: the search, then the stock changes."""
    url = stack.plain_url("inventory")
    part_search_terms(out / "part-terms.txt")
    connections = [int(count) for count in args.connections.split(",")]
    results["inventory"] = []
    for size in (int(size) for size in args.part_sizes.split(",")):
        started = time.perf_counter()
        added = run_sync(seed_parts_to(url, size))
        seconds = time.perf_counter() - started
        logger.info("seeded %d parts (now %d) in %.1fs", added, size, seconds)
        results.setdefault("part_seeding", []).append(
            {"size": size, "added": added, "seconds": seconds}
        )
        run_sync(sample_locations(url, out / "part-locations.txt"))
        _explain_parts(stack, size, out)
        print("\n" + report.HTTP_HEADER.replace("     size", "    parts"), flush=True)
        results["inventory"].extend(
            _http_round(
                stack,
                size,
                connections,
                args.seconds,
                ["W8 search", "W8 stock"],
                out,
                warm_up=not args.smoke,
            )
        )
    growth = report.search_growth(results["inventory"])
    if growth:
        print(growth, flush=True)
    results["imports"] = measure_imports(
        stack, stack.token(), out, rows=100 if args.smoke else IMPORT_ROWS
    )
    print("\n" + "\n".join(import_lines(results["imports"])), flush=True)


def main() -> None:
    args = _parse()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ensure_wrk()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        # Nothing is measured: runs need not wait long for each other.
        global QUIET_SECONDS
        QUIET_SECONDS = 0.2
    if args.profile:
        global PROFILES
        PROFILES = out / "profiles"
        PROFILES.mkdir(exist_ok=True)
    sizes = [int(size) for size in args.sizes.split(",")]
    connections = [int(count) for count in args.connections.split(",")]
    workloads = args.workloads.split(",")
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "http": [],
        "workers": args.workers,
    }
    with_issues = bool(ISSUES_WORKLOADS & set(workloads))
    with_inventory = bool(INVENTORY_WORKLOADS & set(workloads))
    # The smoke run shares the machine's PostgreSQL with the test suite: small pools.
    with running_stack(
        out / "work",
        pool_size=3 if args.smoke else 10,
        issues=with_issues,
        workers=args.workers if "W1" in workloads else 1,
        inventory=with_inventory,
    ) as stack:
        contacts_url = stack.plain_url("contacts")
        search_terms(out / "terms.txt")
        for size in sizes if CONTACTS_WORKLOADS & set(workloads) else []:
            started = time.perf_counter()
            added = run_sync(seed_to(contacts_url, size))
            logger.info(
                "seeded %d contacts (now %d) in %.1fs", added, size, time.perf_counter() - started
            )
            run_sync(sample_ids(contacts_url, out / "ids.txt"))
            run_sync(sample_selective_terms(contacts_url, out / "selective-terms.txt"))
            _explain(stack, size, out)
            if size == sizes[0]:
                # Events and gRPC first, while no earlier workload's leftovers (autovacuum
                # of a million seeded rows, W2's events) share the two cores with them.
                _pipeline_rounds(stack, args, workloads, results, out)
                print("\n" + report.HTTP_HEADER, flush=True)
            results["http"].extend(
                _http_round(
                    stack,
                    size,
                    connections,
                    args.seconds,
                    [*CONTACTS_WORKLOADS & {*workloads}],
                    out,
                )
            )
            if args.export and "W1" in workloads:
                results["http"].extend(_exported_round(stack, size, connections, args.seconds, out))
        if with_issues:
            _issues_rounds(stack, args, workloads, results, out)
        if with_inventory:
            _inventory_rounds(stack, args, results, out)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "results.md").write_text(report.markdown(results))
    print(f"\nresults: {out / 'results.md'} and {out / 'results.json'}")
    errors = sum(
        row[target]["errors"]
        for row in [
            *results["http"],
            *results.get("issues", []),
            *results.get("files", []),
            *results.get("inventory", []),
        ]
        for target in ("lkern", "floor", "layers", "workers")
        if target in row
    )
    errors += sum(int(results.get(key, {}).get("errors", 0)) for key in ("grpc", "grpc_floor"))
    if errors:
        print(f"{errors} requests failed (errors, timeouts or non-2xx answers)")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
