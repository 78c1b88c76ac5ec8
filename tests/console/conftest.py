"""One ``lkern run`` with its console, shared by the console's browser and security tests.

The whole system in one process, as a new user starts it, except that issues
keeps its files on a real S3-protocol server behind a proxy the tests can
close: storage that goes away is what makes a deletion wait (§8) and a
readiness check fail by name.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.storage.conftest import new_bucket
from tests.support.processes import LkernProcess, free_port
from tests.support.proxy import ThreadedProxy
from tests.support.s3 import CREDENTIALS, MotoServer
from tests.system.conftest import identity_env

ADMIN_EMAIL = "console-admin@lkern.example"
ADMIN_PASSWORD = "console admin password"
VIEWER_EMAIL = "console-viewer@lkern.example"
VIEWER_PASSWORD = "console viewer password"
SERVICE_NAMES = ("identity", "contacts", "orders", "issues", "inventory")


class System:
    def __init__(
        self, process: LkernProcess, ports: dict[str, int], data_dir: Path, proxy: ThreadedProxy
    ) -> None:
        self.process = process
        self.ports = ports
        self.data_dir = data_dir
        self.proxy = proxy
        self.console_url = f"http://127.0.0.1:{ports['console']}"
        self._admin_token: str | None = None

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def login(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> dict[str, Any]:
        answer = httpx.post(
            f"{self.url('identity')}/api/v1/auth/token",
            data={"username": email, "password": password},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        pair: dict[str, Any] = answer.json()
        return pair

    def admin(self) -> httpx.Client:
        """A client calling the services as the real admin (identity checks who it is)."""
        if self._admin_token is None:
            self._admin_token = self.login()["access_token"]
        return httpx.Client(headers={"Authorization": f"Bearer {self._admin_token}"}, timeout=30)

    def sqlite(self, service: str, sql: str, *args: Any) -> list[Any]:
        with sqlite3.connect(self.data_dir / service / f"{service}.db", timeout=30) as db:
            return db.execute(sql, args).fetchall()


def wait_until(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what} not met in time")


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory, s3_server: MotoServer) -> Iterator[System]:
    root = tmp_path_factory.mktemp("console-system")
    data_dir = root / "data"
    proxy = ThreadedProxy(s3_server.port)
    proxy.open()
    ports = {name: free_port() for name in (*SERVICE_NAMES, "console")}
    grpc = {name: free_port() for name in ("identity", "contacts", "inventory")}
    env = {
        **identity_env(ports["identity"]),
        **CREDENTIALS,
        "LKERN_DATA_DIR": str(data_dir),
        "LKERN_ADMIN_EMAIL": ADMIN_EMAIL,
        "LKERN_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "LKERN_CONSOLE_PORT": str(ports["console"]),
        "LKERN_ISSUES_STORAGE_URL": s3_server.url(new_bucket(), proxy.endpoint),
        # Dead letters come fast; interrupted deletions wait for the page's button.
        "LKERN_CONSUMER_RETRY_BASE_SECONDS": "0.01",
        "LKERN_CLEANUP_POLL_SECONDS": "3600",
        "LKERN_CLEANUP_RETRY_BASE_SECONDS": "3600",
        "LKERN_RATE_LIMIT_REQUESTS": "1000000",
        "LKERN_ANONYMOUS_RATE_LIMIT_REQUESTS": "1000000",
        **{f"LKERN_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        **{f"LKERN_{name.upper()}_GRPC_PORT": str(port) for name, port in grpc.items()},
        **{f"LKERN_{name.upper()}_GRPC_TARGET": f"127.0.0.1:{port}" for name, port in grpc.items()},
    }
    process = LkernProcess(["run"], env=env, log_path=root / "run.log")
    process.start()
    running = System(process, ports, data_dir, proxy)
    try:
        for name in (*SERVICE_NAMES, "console"):
            process.wait_healthy(running.url(name), timeout=90)
        admin = running.admin()
        made = admin.post(
            f"{running.url('identity')}/api/v1/users",
            json={
                "email": VIEWER_EMAIL,
                "full_name": "Vera Viewer",
                "password": VIEWER_PASSWORD,
                "role": "viewer",
            },
        )
        assert made.status_code == 201, made.text
        yield running
    finally:
        process.stop()
        proxy.stop()
