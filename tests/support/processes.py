"""Services as real ``lkern`` processes on loopback, for system tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StopTimeout(TimeoutError):
    """A process outlived the wait for its exit; says where each of its threads was."""


def _stacks(pid: int) -> str:
    """Every thread's stack of process ``pid`` (py-spy, a dev tool), or why there is none."""
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        return "(no py-spy beside this Python)"
    try:
        dumped = subprocess.run(
            [str(py_spy), "dump", "--pid", str(pid), "--subprocesses"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return "(py-spy dump did not answer)"
    return dumped.stdout + dumped.stderr


class LkernProcess:
    """``lkern <args>`` in a child process, with its output kept in a file."""

    def __init__(self, args: list[str], *, env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lkern", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_healthy(self, base_url: str, timeout: float = 60) -> None:
        # Generous: importing the stack alone took 27 s on a machine shared by eight test runs.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"lkern exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"lkern did not become healthy:\n{self.output()}")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15) -> float:
        """Send ``sig`` and wait; returns how long the exit took."""
        assert self.process is not None
        started = time.perf_counter()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired as exc:
                stacks = _stacks(self.process.pid)
                self.process.kill()
                self.process.wait()
                raise StopTimeout(
                    f"lkern {' '.join(self.args)} still running {timeout:.0f}s after {sig.name}"
                    f"\n--- its threads ---\n{stacks}\n--- its log, last lines ---\n"
                    + "\n".join(self.output().splitlines()[-40:])
                ) from exc
        return time.perf_counter() - started

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode
