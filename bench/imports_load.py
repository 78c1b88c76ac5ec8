"""W8's import: 10,000 CSV rows in one go, through the route and through the command.

Each way first checks the file (``dry_run``), then imports it: half of the rows
put stock into locations of boxes made free for it, so the import writes parts,
locations, history and a ``part_created`` and ``stock_changed`` event a row, all
in one transaction. The replica's CPU is read from ``/proc`` around each request.
The command runs as a user runs it (``lkern inventory
import FILE.csv``, a process of its own against the same database), so its time
includes starting Python and checking the schema (its CPU, from the child's
resource usage, too); it is also timed against an
embedded SQLite database of its own, its default when no database is set.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.cpu import cpu_seconds
from bench.seed_parts import BOX_CAPACITY
from bench.stack import Stack

ROWS = 10_000
HEADER = "description,category,tags,attributes,box_no,loc_no,quantity\n"


def import_csv_text(first_box: int, rows: int = ROWS, tag: str = "import") -> str:
    """``rows`` parts; every second one stocked, the boxes from ``first_box`` on filled in order."""
    lines = [HEADER]
    for n in range(rows):
        place = ",,"
        if n % 2 == 0:
            box, loc = divmod(n // 2, BOX_CAPACITY)
            place = f"{first_box + box},{loc + 1},{10 + n % 90}"
        lines.append(f"{tag} part {n} resistor 0603,imports,{tag};smd,value={n}k,{place}\n")
    return "".join(lines)


def _boxes(client: httpx.Client, count: int) -> int:
    """Make ``count`` empty boxes; returns the first one's number."""
    numbers = []
    for _ in range(count):
        answer = client.post("/api/v1/boxes", json={"capacity": BOX_CAPACITY})
        answer.raise_for_status()
        numbers.append(int(answer.json()["box_no"]))
    return min(numbers)


def _timed_post(client: httpx.Client, pid: int, text: str, *, dry_run: bool) -> dict[str, Any]:
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    answer = client.post(
        "/api/v1/parts/import",
        params={"dry_run": "true"} if dry_run else None,
        content=text.encode(),
        headers={"Content-Type": "text/csv"},
    )
    seconds = time.perf_counter() - started
    answer.raise_for_status()
    body = answer.json()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds(pid) - cpu,
        "created": len(body["created"]),
        "rows": body["rows"],
    }


def _timed_command(file: Path, env: dict[str, str], *, dry_run: bool) -> dict[str, Any]:
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "lkern", "inventory", "import", str(file)]
        + (["--dry-run"] if dry_run else []),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise RuntimeError(f"lkern inventory import failed:\n{completed.stderr[-2000:]}")
    return {
        "seconds": seconds,
        "cpu_seconds": used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime,
        "said": completed.stdout.strip(),
    }


def measure_imports(stack: Stack, token: str, out: Path, rows: int = ROWS) -> dict[str, Any]:
    """The route's and the command's dry run and import of ``rows`` rows each."""
    boxes_needed = -(-rows // 2 // BOX_CAPACITY)
    results: dict[str, Any] = {"rows": rows}
    with httpx.Client(
        base_url=stack.url("inventory"),
        headers={"Authorization": f"Bearer {token}"},
        timeout=600,
    ) as client:
        text = import_csv_text(_boxes(client, boxes_needed), rows, tag="route")
        results["route_bytes"] = len(text.encode())
        pid = stack.pid("inventory")
        results["route_dry_run"] = _timed_post(client, pid, text, dry_run=True)
        results["route"] = _timed_post(client, pid, text, dry_run=False)
        file = out / "import-command.csv"
        file.write_text(import_csv_text(_boxes(client, boxes_needed), rows, tag="command"))
    env = {
        **os.environ,
        "LKERN_DATA_DIR": str(out / "work"),
        "LKERN_INVENTORY_DATABASE_URL": stack.database_urls["inventory"],
        "LKERN_LOG_LEVEL": "warning",
    }
    results["command_dry_run"] = _timed_command(file, env, dry_run=True)
    results["command"] = _timed_command(file, env, dry_run=False)
    # The command's own default: an embedded SQLite database under a fresh data directory,
    # the rows without stock (it has no boxes).
    sqlite_dir = out / "import-sqlite"
    sqlite_dir.mkdir(exist_ok=True)
    plain = out / "import-sqlite.csv"
    plain.write_text(
        "description,category,tags,attributes\n"
        + "".join(f"sqlite part {n} resistor 0603,imports,smd,value={n}k\n" for n in range(rows))
    )
    sqlite_env = {
        key: value
        for key, value in env.items()
        if key not in {"LKERN_INVENTORY_DATABASE_URL", "LKERN_DATABASE_URL"}
    }
    sqlite_env["LKERN_DATA_DIR"] = str(sqlite_dir)
    results["command_sqlite"] = _timed_command(plain, sqlite_env, dry_run=False)
    return results


def import_lines(results: dict[str, Any]) -> list[str]:
    """The import's figures as printed and written to the results."""
    rows = results["rows"]

    def line(what: str, figures: dict[str, Any]) -> str:
        seconds = figures["seconds"]
        return (
            f"{what}: {seconds:.1f} s ({rows / seconds:,.0f} rows/s), "
            f"{figures['cpu_seconds']:.1f} s of {who(what)} CPU"
        )

    def who(what: str) -> str:
        return "the replica's" if "POST" in what else "the command's"

    return [
        f"W8 import of {rows:,} rows ({results['route_bytes'] / 2**20:.1f} MiB, half stocked):",
        line("  POST /api/v1/parts/import?dry_run=true", results["route_dry_run"]),
        line("  POST /api/v1/parts/import", results["route"]),
        line("  lkern inventory import --dry-run (PostgreSQL)", results["command_dry_run"]),
        line("  lkern inventory import (PostgreSQL)", results["command"]),
        line("  lkern inventory import (embedded SQLite, no stock)", results["command_sqlite"]),
    ]
