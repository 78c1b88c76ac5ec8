"""Third-party tools some tests run, installed on first use like every other test tool.

Redocly's CLI comes from the npm registry into ``.cache/`` at the repository's
root (ignored by git); Chromium from Debian's packages. Where a tool cannot be
had the test skips, except under ``CI=true``, where that fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI

CACHE = Path(__file__).resolve().parents[2] / ".cache"
REDOCLY_VERSION = "2.77.0"
CHROMIUM = Path("/usr/bin/chromium")


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


def chromium() -> Path:
    """Debian's Chromium (Playwright's own browser download is not to be had everywhere)."""
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        unavailable("Chromium is not installed and apt-get cannot install it here")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=environment)
        if done.returncode != 0:
            unavailable(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    if not CHROMIUM.exists():
        unavailable("apt-get installed chromium, but not at /usr/bin/chromium")
    return CHROMIUM
