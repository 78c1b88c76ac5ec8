"""The suite's own rule: without PostgreSQL its tests skip locally and fail in CI."""

from __future__ import annotations

import os
import subprocess
import sys

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
