"""W1-W3 (W3s the selective search), W6 and W8: HTTP load from wrk.

wrk is a separate C process, so the client is never the limit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("load.lua")
WORKLOADS = {
    "W1": "get",
    "W2": "create",
    "W3": "search",
    "W3s": "search",
    "W6": "issues",
    "W8 search": "parts",
    "W8 stock": "stock",
}
# Phones of W2's writes: a prefix per run keeps them unique across runs (8 digits each).
PHONE_PREFIXES = [f"+49{p}" for p in (151, 157, 159, 160, 162, 163, 170, 171, 172, 173, 174)]
PHONE_PREFIXES += [f"+49{p}" for p in (175, 176, 177, 178, 179)]


@dataclass(frozen=True, slots=True)
class HttpResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # connect, read, write, timeouts and non-2xx answers together
    error_detail: dict[str, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def ensure_wrk() -> str:
    """wrk's path; installed from Debian's packages when missing (the machines run as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


def run_wrk(
    base_url: str,
    workload: str,
    *,
    connections: int,
    seconds: float,
    token: str,
    input_file: Path | None,
    run_index: int,
) -> HttpResult:
    env = {
        **os.environ,
        "BENCH_WORKLOAD": workload,
        "BENCH_TOKEN": token,
        "BENCH_INPUT": str(input_file or ""),
        # A mobile prefix and two digits of the run's number: unique for 1,600 runs.
        "BENCH_PHONE": f"{PHONE_PREFIXES[run_index % len(PHONE_PREFIXES)]}"
        f"{run_index // len(PHONE_PREFIXES) % 100:02d}",
        "BENCH_RUN": f"r{os.getpid()}x{run_index}",
    }
    threads = min(2, connections)
    completed = subprocess.run(
        [
            ensure_wrk(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(SCRIPT),
            base_url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(
        (ln for ln in completed.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None
    )
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{completed.stdout}\n{completed.stderr}")
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    detail = {key: int(raw[key]) for key in ("connect", "read", "write", "timeout", "status")}
    return HttpResult(
        requests=int(raw["requests"]),
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=sum(detail.values()),
        error_detail=detail,
    )
