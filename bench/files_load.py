"""W7: 1 MiB files uploaded to issues and downloaded again, from a separate process.

Run as ``python -m bench.files_load SETTINGS_JSON``; prints one JSON line. wrk
cannot send multipart bodies, so this is an asyncio loop over httpx with a
fixed number of requests in flight. An upload is a multipart POST of the file
to an issue, each upload to an issue of its own (an upload holds its issue's
row lock while the file goes to S3); a download is the GET of the
attachment, its 307 followed to the presigned S3 link, and the whole file
read. Its own CPU time is reported to show whether it was the limit.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.stats import percentile

FILE_BYTES = 1024 * 1024
#: A PNG by its first bytes, so the upload passes the type check; the rest is noise.
PNG_HEAD = b"\x89PNG\r\n\x1a\n"


def file_body() -> bytes:
    return PNG_HEAD + os.urandom(FILE_BYTES - len(PNG_HEAD))


async def _load(settings: dict[str, Any], lines: list[str]) -> tuple[dict[str, Any], list[str]]:
    base, mode = settings["base_url"], settings["mode"]
    headers = {"Authorization": f"Bearer {settings['token']}"} if settings["token"] else {}
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    uploaded: list[str] = []
    body = file_body()
    # Each run from its own place in the issues, so no issue collects the files of all runs.
    random.shuffle(lines)
    targets = itertools.cycle(lines)
    limits = httpx.Limits(max_connections=settings["concurrency"] * 2)
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits) as client:
        deadline = time.perf_counter() + settings["seconds"]

        async def upload(issue_id: str) -> bool:
            answer = await client.post(
                f"{base}/api/v1/issues/{issue_id}/attachments",
                files={"file": ("screenshot.png", body, "image/png")},
            )
            if answer.status_code != 201:
                errors[f"status {answer.status_code}"] += 1
                return False
            uploaded.append(f"{issue_id} {answer.json()['file_id']}")
            return True

        async def download(line: str) -> bool:
            issue_id, file_id = line.split()
            answer = await client.get(
                f"{base}/api/v1/issues/{issue_id}/attachments/{file_id}", follow_redirects=True
            )
            if answer.status_code != 200 or len(answer.content) != FILE_BYTES:
                errors[f"status {answer.status_code}, {len(answer.content)} bytes"] += 1
                return False
            return True

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    done = await (upload if mode == "upload" else download)(next(targets))
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                if done:
                    latencies.append(time.perf_counter() - started)

        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(settings["concurrency"])))
        elapsed = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    ordered = sorted(seconds * 1000 for seconds in latencies)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "p50_ms": percentile(ordered, 0.50),
        "p90_ms": percentile(ordered, 0.90),
        "p99_ms": percentile(ordered, 0.99),
        "max_ms": ordered[-1] if ordered else float("nan"),
        "errors": sum(errors.values()),
        "error_detail": dict(errors),
        "client_cpu_share": cpu / elapsed if elapsed else 0.0,
    }, uploaded


def main() -> None:
    settings = json.loads(sys.argv[1])
    lines = Path(settings["input"]).read_text().splitlines()
    if not lines:
        raise SystemExit(f"nothing to {settings['mode']}: {settings['input']} is empty")
    result, uploaded = asyncio.run(_load(settings, lines))
    if settings["output"]:
        Path(settings["output"]).write_text("".join(f"{line}\n" for line in uploaded))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
