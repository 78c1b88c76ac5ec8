"""``lkern new-service`` end to end (SPEC §14): a service generated with every option into
a copy of this checkout passes its own tests there, with the conventions tests, ruff,
mypy and ``lkern check``, and ``lkern serve`` runs it on PostgreSQL.

The copy is generated once for the module; mypy, the slowest check, starts as soon as
the files are written and runs beside the generated tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import create_database, drop_database, run_sync
from tests.support.tokens import bearer
from tests.system.conftest import serve

ROOT = Path(__file__).resolve().parents[2]
NAME = "gadgets"
EVERY_OPTION = [
    *("--code", "lkms190", "--port", "8190", "--grpc-port", "5190"),
    *("--prefix", "GAD", "--files", "--grpc"),
]
#: The generated tests, and the tests every service is held to that take it up by name.
SELECTED = "gadget or test_architecture or test_each_service_takes_the_platform_tables"

# One worker holds the copy: the tests of this module share it.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("new_service")]


@dataclass
class Checkout:
    root: Path
    env: dict[str, str]
    written: list[str]
    mypy: subprocess.Popen[str]

    def run(self, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            cwd=self.root,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )

    def lkern(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "lkern", *args, **env)


def copy_checkout(target: Path) -> None:
    """The files git knows of (tracked, and new ones it does not ignore), as they are now;
    ``.cache/`` is this checkout's own."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if name.startswith(".cache/"):
            continue
        source = ROOT / name
        if source.is_file() or source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name, follow_symlinks=False)
    # The tools tests install on first use (Redocly's CLI) are shared, not installed again.
    (ROOT / ".cache").mkdir(exist_ok=True)
    (target / ".cache").symlink_to(ROOT / ".cache")


def tool(name: str) -> str:
    found = Path(sys.executable).parent / name
    return str(found) if found.exists() else name


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checkout]:
    root = tmp_path_factory.mktemp("checkout")
    copy_checkout(root)
    env = {
        **os.environ,
        # The copy's code (and its tests package) ahead of this checkout's.
        "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)]),
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "LKERN_DATA_DIR": str(root / ".data"),
    }
    generated = subprocess.run(
        [sys.executable, "-m", "lkern", "new-service", NAME, *EVERY_OPTION],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    written = generated.stdout.split()
    python = [path for path in written if path.endswith(".py") and "/proto/" not in path]
    mypy = subprocess.Popen(
        [tool("mypy"), *python],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield Checkout(root, env, written, mypy)
    finally:
        mypy.kill()
        mypy.communicate()


def test_it_writes_the_package_its_events_proto_migration_tests_and_registration(
    checkout: Checkout,
):
    for path in [
        f"src/lkern/{NAME}/models.py",
        f"src/lkern/{NAME}/grpc.py",
        f"src/lkern/{NAME}/migrations/0001_{NAME}.py",
        f"src/lkern/events/{NAME}.py",
        f"proto/lkern/proto/{NAME}/v1/{NAME}.proto",
        f"src/lkern/proto/{NAME}/v1/{NAME}_pb2_grpc.py",
        f"tests/api/test_{NAME}.py",
        f"docs/events/lkern.{NAME}.created.schema.json",
        "src/lkern/services.py",
    ]:
        assert path in checkout.written
        assert (checkout.root / path).is_file()


def test_a_second_run_refuses_the_taken_name_code_and_ports_and_writes_nothing(
    checkout: Checkout,
):
    before = {path: (checkout.root / path).read_text() for path in checkout.written}
    again = checkout.lkern("new-service", NAME, *EVERY_OPTION)
    assert again.returncode != 0
    for taken in (f"name {NAME!r} is taken", "code lkms190 is taken", "port 8190", "port 5190"):
        assert taken in again.stderr
    assert "Nothing was written" in again.stderr
    assert {path: (checkout.root / path).read_text() for path in checkout.written} == before


def test_its_tests_and_the_conventions_pass_on_both_backends(checkout: Checkout):
    result = checkout.run(
        sys.executable,
        *("-m", "pytest", "-p", "asyncio", "-p", "no:cacheprovider", "-q"),
        *("tests/unit", "tests/api", "tests/events", "tests/rpc", "tests/test_migrations.py"),
        *("-k", SELECTED),
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary, summary


def test_ruff_finds_nothing_to_change(checkout: Checkout):
    # The generated gRPC modules are protoc's, left out of ruff like the others.
    python = [path for path in checkout.written if path.endswith(".py") and "/proto/" not in path]
    for command in (["check", "--no-cache"], ["format", "--no-cache", "--check"]):
        result = checkout.run(tool("ruff"), *command, *python)
        assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing(checkout: Checkout):
    output, _ = checkout.mypy.communicate(timeout=600)
    assert checkout.mypy.returncode == 0, output


def test_lkern_check_finds_no_violation(checkout: Checkout):
    result = checkout.lkern("check", NAME)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no violations" in result.stdout


def test_served_on_postgresql_it_creates_lists_and_deletes(
    checkout: Checkout,
    postgres_admin_url: str,
    identity_url: dict[str, str],
    tmp_path: Path,
):
    url = run_sync(create_database(postgres_admin_url))
    try:
        env = {
            "PYTHONPATH": checkout.env["PYTHONPATH"],
            f"LKERN_{NAME.upper()}_DATABASE_URL": url,
            **identity_url,
        }
        migrated = checkout.lkern("migrate", NAME, **env)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        served = serve(NAME, tmp_path / "served", env)
        try:
            with httpx.Client(base_url=served.base_url, headers=bearer("admin")) as client:
                created = client.post(f"/api/v1/{NAME}", json={"name": "Desk lamp"})
                assert created.status_code == 201, created.text
                item = created.json()
                assert item["code"].startswith("GAD-")
                listed = client.get(f"/api/v1/{NAME}", params={"search": "lamp"}).json()
                assert [found["id"] for found in listed["items"]] == [item["id"]]
                deleted = client.delete(f"/api/v1/{NAME}/{item['id']}")
                assert deleted.status_code == 200 and deleted.json()["is_deleted"] is True
                assert client.get(f"/api/v1/{NAME}").json()["total"] == 0
                purged = client.delete(f"/api/v1/{NAME}/{item['id']}/permanent")
                assert purged.status_code == 200 and purged.json()["status"] == "completed"
                gone = client.get(f"/api/v1/{NAME}/{item['id']}", params={"include_deleted": True})
                assert gone.status_code == 404
        finally:
            served.process.stop()
    finally:
        run_sync(drop_database(postgres_admin_url, url))
