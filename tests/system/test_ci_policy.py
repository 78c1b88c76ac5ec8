"""The suite's own rules: without PostgreSQL its tests skip locally and fail in CI; what is
installed is what uv.lock says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DEAD_SERVER = "postgresql://postgres@127.0.0.1:9/none"


def run_postgres_tests(ci: bool) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LKERN_TEST_POSTGRES_URL": DEAD_SERVER,
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    env.pop("CI", None)
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "asyncio",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_migrations.py",
            "-k",
            "postgres",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("ci", [False, True])
def test_missing_postgres_skips_locally_and_fails_in_ci(ci: bool):
    result = run_postgres_tests(ci)
    if ci:
        assert result.returncode != 0
        assert "PostgreSQL is mandatory in CI" in result.stdout
    else:
        assert result.returncode == 0, result.stdout
        assert "skipped" in result.stdout and "failed" not in result.stdout


ROOT = Path(__file__).resolve().parents[2]


def test_the_lock_matches_pyproject():
    # Offline: a lock that matches needs no resolving, one that does not fails.
    result = subprocess.run(
        [sys.executable, "-m", "uv", "lock", "--check", "--offline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def make_would_run(target: str) -> str:
    result = subprocess.run(
        ["make", "--dry-run", "--always-make", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_set_up_installs_the_locked_versions_and_lint_checks_the_lock():
    # What the README's commands install with (CI runs `make test`): the lock,
    # refused if it no longer matches pyproject.toml.
    [install] = [line for line in make_would_run("setup").splitlines() if " sync " in line]
    assert "--locked" in install.split() or "--frozen" in install.split()
    assert "lock --check" in make_would_run("lint")


def test_lint_runs_the_conformance_check():
    # CI's `make test` lints first: every registered service against SPEC §14.
    assert "lkern check" in make_would_run("lint")
