"""The ``lkern`` command as a user runs it: real processes, real signals, real restarts."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner

from lkern.cli import main
from tests.conftest import new_database_url
from tests.support.processes import LkernProcess, free_port
from tests.support.tokens import bearer
from tests.system.conftest import identity_env, serve


def lkern(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "lkern", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_on_every_command():
    def commands(group: click.Group, path: list[str]) -> list[list[str]]:
        found = [path]
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                found += commands(command, [*path, name])
            else:
                found.append([*path, name])
        return found

    for command in commands(main, []):
        result = CliRunner().invoke(main, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage:" in result.output


def test_run_serves_contacts_and_orders_with_sqlite_and_stops_on_sigint(tmp_path: Path):
    port, orders_port, contacts_grpc, identity_port = (free_port() for _ in range(4))
    issues_port, identity_grpc, inventory_grpc = (free_port() for _ in range(3))
    console_port = free_port()
    process = LkernProcess(
        ["run"],
        env={
            "LKERN_DATA_DIR": str(tmp_path / "data"),
            "LKERN_CONTACTS_PORT": str(port),
            "LKERN_CONTACTS_GRPC_PORT": str(contacts_grpc),
            "LKERN_ORDERS_PORT": str(orders_port),
            "LKERN_IDENTITY_PORT": str(identity_port),
            "LKERN_IDENTITY_GRPC_PORT": str(identity_grpc),
            "LKERN_ISSUES_PORT": str(issues_port),
            "LKERN_INVENTORY_PORT": str(free_port()),
            "LKERN_INVENTORY_GRPC_PORT": str(inventory_grpc),
            # Its own console port, so no other run on the machine takes 8099 from it.
            "LKERN_CONSOLE_PORT": str(console_port),
            **identity_env(identity_port),
            "LKERN_CONTACTS_GRPC_TARGET": f"127.0.0.1:{contacts_grpc}",
            "LKERN_IDENTITY_GRPC_TARGET": f"127.0.0.1:{identity_grpc}",
            "LKERN_INVENTORY_GRPC_TARGET": f"127.0.0.1:{inventory_grpc}",
        },
        log_path=tmp_path / "run.log",
    )
    process.start()
    base = f"http://127.0.0.1:{port}"
    try:
        process.wait_healthy(base)
        # The services start side by side; orders may still be migrating, and
        # contacts takes identity's keys for the token below once identity answers.
        process.wait_healthy(f"http://127.0.0.1:{orders_port}")
        process.wait_healthy(f"http://127.0.0.1:{identity_port}")
        created = httpx.post(
            f"{base}/api/v1/contacts",
            json={"name": "Ada", "email": "ada@example.com"},
            headers=bearer("member"),
        )
        assert created.status_code == 201
        assert httpx.get(f"{base}/docs").status_code == 200
        order = httpx.post(
            f"http://127.0.0.1:{orders_port}/api/v1/orders",
            json={"contact_id": created.json()["id"]},
            headers=bearer("member"),
        )
        assert order.status_code == 201, order.text
        issues = f"http://127.0.0.1:{issues_port}"
        process.wait_healthy(issues)
        issue = httpx.post(
            f"{issues}/api/v1/issues",
            json={"title": "Printer jams", "type": "bug", "contact_id": created.json()["id"]},
            headers=bearer("member"),
        )
        assert issue.status_code == 201, issue.text
        attached = httpx.post(
            f"{issues}/api/v1/issues/{issue.json()['id']}/attachments",
            files={"file": ("note.txt", b"paper stuck in tray 2\n", "text/plain")},
            headers=bearer("member"),
        )
        assert attached.status_code == 201, attached.text
    finally:
        elapsed = process.stop(signal.SIGINT)
    assert process.returncode == 0, process.output()
    assert elapsed < 5
    assert (tmp_path / "data" / "contacts" / "contacts.db").exists()
    assert (tmp_path / "data" / "orders" / "orders.db").exists()
    assert "contacts listening on http://127.0.0.1" in process.output()
    assert "orders listening on http://127.0.0.1" in process.output()
    assert "issues listening on http://127.0.0.1" in process.output()
    assert f"console listening on http://127.0.0.1:{console_port}" in process.output()
    # Attachments on the embedded default: local files under the data directory.
    assert list((tmp_path / "data" / "issues" / "files" / "issues").glob("*/*.txt"))
    # The first start created the admin and showed its generated password once.
    assert "created the bootstrap admin admin@lkern.example with password" in process.output()


def test_sigterm_finishes_cleanly_within_seconds(tmp_path: Path):
    service = serve("contacts", tmp_path)
    elapsed = service.process.stop(signal.SIGTERM)
    assert service.process.returncode == 0, service.process.output()
    assert elapsed < 5
    assert "contacts stopped" in service.process.output()


def test_log_level_survives_a_real_restart(tmp_path: Path, identity_url: dict[str, str]):
    service = serve("contacts", tmp_path, identity_url)
    try:
        response = httpx.put(
            f"{service.base_url}/config/log-level", json={"level": "error"}, headers=bearer()
        )
        assert response.status_code == 200
    finally:
        service.process.stop()
    assert '"log_level": "error"' in (tmp_path / "contacts" / "runtime_config.json").read_text()
    restarted = serve("contacts", tmp_path, identity_url)
    try:
        level = httpx.get(f"{restarted.base_url}/config/log-level", headers=bearer("viewer"))
        level = level.json()["level"]
        assert level == "error"
    finally:
        restarted.process.stop()


def test_serve_on_postgres_and_migrate_both_ways(request, tmp_path: Path, identity_url):
    url = new_database_url(request, "postgres", tmp_path)
    env = {"LKERN_DATA_DIR": str(tmp_path), "LKERN_CONTACTS_DATABASE_URL": url, **identity_url}

    migrated = lkern("migrate", "contacts", "upgrade", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert "contacts: upgrade to head done" in migrated.stdout

    service = serve("contacts", tmp_path, env)
    try:
        created = httpx.post(
            f"{service.base_url}/api/v1/contacts",
            json={"name": "Pg", "email": "pg@example.com"},
            headers=bearer(),
        )
        assert created.status_code == 201
        ready = httpx.get(f"{service.base_url}/health/ready").json()
        assert ready["checks"]["database"] == "ok"
    finally:
        service.process.stop()

    down = lkern("migrate", "contacts", "downgrade", "base", env=env)
    assert down.returncode == 0, down.stderr
    up = lkern("migrate", "all", env=env)
    assert up.returncode == 0, up.stderr


@pytest.mark.parametrize(
    "args", [["migrate", "nope"], ["serve", "nope"], ["migrate", "contacts", "sideways"]]
)
def test_bad_arguments_fail_with_usage(args):
    result = lkern(*args, env={})
    assert result.returncode == 2
    assert "Usage:" in result.stderr
