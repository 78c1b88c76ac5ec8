"""W7: 1 MiB files uploaded to issues and downloaded again, from a separate process.

Run as ``python -m bench.files_load SETTINGS_JSON``; prints one JSON line with
the uploads' and the downloads' figures. wrk cannot send multipart bodies, so
this is an asyncio loop over httpx with a fixed number of requests in flight.
First uploads, for the given seconds: a multipart POST of the file to an
issue, each upload to an issue of its own (an upload holds its issue's row
lock while the file goes to S3). Then downloads of the files just uploaded,
as long again: the GET of the attachment, its 307 followed to the presigned
S3 link, and the whole file read. Its own CPU time is reported to show
whether it was the limit.
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bench.stats import percentile

FILE_BYTES = 1024 * 1024
#: A PNG by its first bytes, so the upload passes the type check; the rest is noise.
PNG_HEAD = b"\x89PNG\r\n\x1a\n"


def file_body() -> bytes:
    return PNG_HEAD + os.urandom(FILE_BYTES - len(PNG_HEAD))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _phase(
    request: Callable[[str], Awaitable[str | None]],
    lines: list[str],
    concurrency: int,
    seconds: float,
) -> tuple[dict[str, Any], list[str]]:
    """``request`` for each line in turn from ``concurrency`` tasks for ``seconds``;
    returns the figures and what the successful requests answered."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    answers: list[str] = []
    targets = itertools.cycle(lines)
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                answer = await request(next(targets))
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                continue
            except ValueError as exc:  # an answer other than the one expected
                errors[str(exc)] += 1
                continue
            latencies.append(time.perf_counter() - started)
            if answer is not None:
                answers.append(answer)

    cpu_before, started = _cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
    ordered = sorted(seconds * 1000 for seconds in latencies)
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
    }, answers


async def _load(settings: dict[str, Any], issue_ids: list[str]) -> dict[str, Any]:
    base = settings["base_url"]
    headers = {"Authorization": f"Bearer {settings['token']}"} if settings["token"] else {}
    body = file_body()
    # Each run from its own place in the issues, so no issue collects the files of all runs.
    random.shuffle(issue_ids)
    limits = httpx.Limits(max_connections=settings["concurrency"] * 2)
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits) as client:

        async def upload(issue_id: str) -> str:
            answer = await client.post(
                f"{base}/api/v1/issues/{issue_id}/attachments",
                files={"file": ("screenshot.png", body, "image/png")},
            )
            if answer.status_code != 201:
                raise ValueError(f"status {answer.status_code}")
            return f"{issue_id} {answer.json()['file_id']}"

        async def download(line: str) -> None:
            issue_id, file_id = line.split()
            answer = await client.get(
                f"{base}/api/v1/issues/{issue_id}/attachments/{file_id}", follow_redirects=True
            )
            if answer.status_code != 200 or len(answer.content) != FILE_BYTES:
                raise ValueError(f"status {answer.status_code}, {len(answer.content)} bytes")

        concurrency, seconds = settings["concurrency"], settings["seconds"]
        uploads, files = await _phase(upload, issue_ids, concurrency, seconds)
        if not files:
            raise SystemExit(f"no upload succeeded: {uploads['error_detail']}")
        downloads, _ = await _phase(download, files, concurrency, seconds)
    return {"upload": uploads, "download": downloads}


def main() -> None:
    settings = json.loads(sys.argv[1])
    issue_ids = Path(settings["input"]).read_text().split()
    sys.stdout.write(json.dumps(asyncio.run(_load(settings, issue_ids))) + "\n")


if __name__ == "__main__":
    main()
