"""Third-party tools some tests run, installed on first use like every other test tool.

Redocly's CLI comes from the npm registry into ``.cache/`` at the repository's
root (ignored by git); Chromium and docker-compose from Debian's packages. Where a tool cannot be
had the test skips, except under ``CI=true``, where that fails.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import IN_CI

CACHE = Path(__file__).resolve().parents[2] / ".cache"
REDOCLY_VERSION = "2.77.0"
CHROMIUM = Path("/usr/bin/chromium")
DOCKER_COMPOSE = Path("/usr/bin/docker-compose")


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (mandatory in CI)")
    pytest.skip(reason)


def redocly() -> Path:
    """The ``redocly`` command of @redocly/cli, pinned: its rules and their verdicts change."""
    prefix = CACHE / f"redocly-cli-{REDOCLY_VERSION}"
    command = prefix / "node_modules" / ".bin" / "redocly"
    if command.exists():
        return command
    npm = shutil.which("npm")
    if npm is None:
        unavailable("npm is not installed, so Redocly's CLI cannot be")
    installed = subprocess.run(
        [
            str(npm),
            "install",
            "--prefix",
            str(prefix),
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            f"@redocly/cli@{REDOCLY_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if installed.returncode != 0 or not command.exists():
        unavailable(f"npm could not install @redocly/cli: {installed.stderr[-2000:]}")
    return command


def debian_package(package: str, provides: Path) -> Path:
    """``provides`` (a command), installing Debian's ``package`` when it is missing."""
    if provides.exists():
        return provides
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        unavailable(f"{provides} is not installed and apt-get cannot install {package} here")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # The suite's workers may want the same package at once, and dpkg refuses a
    # second apt-get while one runs: they take turns, and a later one finds it there.
    with open(Path(tempfile.gettempdir()) / "lkern-tests-apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if provides.exists():
            return provides
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=900, env=environment
            )
            if done.returncode != 0:
                unavailable(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    if not provides.exists():
        unavailable(f"apt-get installed {package}, but not {provides}")
    return provides


def chromium() -> Path:
    """Debian's Chromium (Playwright's own browser download is not to be had everywhere)."""
    return debian_package("chromium", CHROMIUM)


def docker_compose() -> Path:
    """Debian's ``docker-compose``, which reads and checks a compose file without an engine."""
    return debian_package("docker-compose", DOCKER_COMPOSE)
