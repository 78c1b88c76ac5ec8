"""Where a service's time goes during a measured run: py-spy, summarised as text.

``python -m bench --profile`` samples the L-KERN process of every measured
HTTP run with py-spy (a separate process reading the target's memory, so the
service runs unchanged and unslowed apart from the sampler's own share of the
cores) and keeps, per run, the collapsed stacks and a summary: the functions
holding the most samples on their own and with what they call (L-KERN's own
functions), and each package's share. docs/benchmarks.md quotes these
summaries where a target is missed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: Samples per second; py-spy's default (100) leaves a short run with too few.
RATE = 250
TOP = 25

# A frame in py-spy's raw output: "function (path/to/file.py:line)".
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str:
    """The py-spy binary beside the bench's Python (a dev dependency), or on the PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("--profile needs py-spy: `make setup` installs it with the dev tools")
    return found


@contextmanager
def recorded(pid: int, path: Path, seconds: float) -> Iterator[None]:
    """Sample process ``pid`` (and its worker processes) for ``seconds`` into ``path``
    (collapsed stacks), then write ``path`` with ``.txt`` as its summary."""
    sampler = subprocess.Popen(
        [
            py_spy(),
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--nonblocking",
            "--rate",
            str(RATE),
            "--duration",
            str(max(1, round(seconds))),
            "--format",
            "raw",
            "--output",
            str(path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        try:
            sampler.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            sampler.kill()
            sampler.wait()
    if path.exists():
        path.with_suffix(".txt").write_text(summary(path.read_text()))


@dataclass(frozen=True, slots=True)
class _Frame:
    function: str
    module: str

    def __str__(self) -> str:
        return f"{self.function} ({self.module})"


def _frame(text: str) -> _Frame:
    match = _FRAME.match(text.strip())
    if match is None:
        return _Frame(text.strip(), "?")
    return _Frame(match["function"], _module(match["file"]))


def _module(file: str) -> str:
    """``.../site-packages/sqlalchemy/orm/session.py`` → ``sqlalchemy.orm.session``."""
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            if marker == "/lib/python3":
                file = "stdlib/" + file.split("/", 1)[-1]
            break
    return file.removesuffix(".py").replace("/", ".")


def summary(collapsed: str) -> str:
    """The top functions by own and inclusive samples, and each package's own share."""
    own: Counter[_Frame] = Counter()
    inclusive: Counter[_Frame] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # py-spy puts the thread first ("process 12:"…"thread (0x…)"), then the frames.
        frames = [_frame(part) for part in stack.split(";") if "(" in part and ".py" in part]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        packages[frames[-1].module.split(".", 1)[0]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples\n"

    def table(title: str, counts: Counter[_Frame]) -> list[str]:
        rows = [f"{title} ({total} samples)"]
        rows += [f"  {100 * n / total:5.1f} %  {frame}" for frame, n in counts.most_common(TOP)]
        return rows

    # Every request passes the same outer frames (the loop, the middleware chain):
    # the inclusive view shows L-KERN's own functions, which say what the time is for.
    ours = Counter({f: n for f, n in inclusive.items() if f.module.startswith("lkern.")})
    lines = [*table("own time", own), "", *table("with callees, L-KERN's functions", ours), ""]
    lines.append(f"own time by package ({total} samples)")
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in packages.most_common(TOP)]
    return "\n".join(lines) + "\n"
