"""CPU time used so far, from ``/proc``: a process's, PostgreSQL's and the machine's."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    # After the command name, which may hold spaces and parentheses.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User and system CPU process ``pid`` has used so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS


def postgres_cpu_seconds() -> float:
    """What PostgreSQL has used: every postgres process alive, with what the ones that
    ended used (backends come and go; the postmaster reaps them and keeps their time).
    Every PostgreSQL server on the machine counts: run nothing else meanwhile."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = _stat(int(entry.name))
        except OSError:  # gone meanwhile
            continue
        total += sum(int(field) for field in fields[11:15]) / TICKS
    return total


def machine_cpu_seconds() -> float:
    """Busy CPU of all cores together: user, nice, system, irq and softirq (guest time
    is inside user already; idle, I/O wait and time stolen by the host are not)."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = values[:7]
    return (user + nice + system + irq + softirq) / TICKS
