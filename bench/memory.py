"""A process's resident memory while a workload runs, read from /proc/PID/status."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"no {field} in /proc/{pid}/status")


def rss_mib(pid: int) -> float:
    return _status_kib(pid, "VmRSS") / 1024


@dataclass(frozen=True, slots=True)
class Memory:
    before_mib: float
    peak_mib: float


class PeakRss:
    """Samples VmRSS every few milliseconds while open; ``result`` after it closes.

    VmHWM (the kernel's own peak) is reset on entry where the kernel lets us
    (``clear_refs``), so it also catches a peak between two samples.
    """

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self.pid = pid
        self.interval = interval
        self._stop = threading.Event()
        self._peak_kib = 0
        self._before_kib = 0
        self._hwm_reset = False
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak_kib = max(self._peak_kib, _status_kib(self.pid, "VmRSS"))

    def __enter__(self) -> PeakRss:
        self._before_kib = self._peak_kib = _status_kib(self.pid, "VmRSS")
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self._hwm_reset = True
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._hwm_reset:
            self._peak_kib = max(self._peak_kib, _status_kib(self.pid, "VmHWM"))

    @property
    def result(self) -> Memory:
        return Memory(self._before_kib / 1024, self._peak_kib / 1024)
