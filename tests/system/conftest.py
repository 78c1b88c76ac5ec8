"""Fixtures that run services as separate processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import LkernProcess, free_port
from tests.support.tokens import TEST_KEY_PEM

SERVED_ADMIN_PASSWORD = "served admin password"


class ServedService:
    def __init__(
        self, process: LkernProcess, base_url: str, data_dir: Path, env: dict[str, str]
    ) -> None:
        self.process = process
        self.base_url = base_url
        self.data_dir = data_dir
        self.env = env


def serve(
    name: str, data_dir: Path, extra_env: dict[str, str] | None = None, *, workers: int = 1
) -> ServedService:
    service = start(name, data_dir, extra_env, workers=workers)
    service.process.wait_healthy(service.base_url)
    return service


def start(
    name: str, data_dir: Path, extra_env: dict[str, str] | None = None, *, workers: int = 1
) -> ServedService:
    """``lkern serve NAME [--workers N]`` on free ports, not yet waited for."""
    port = int((extra_env or {}).get(f"LKERN_{name.upper()}_PORT") or free_port())
    env = {
        "LKERN_DATA_DIR": str(data_dir),
        f"LKERN_{name.upper()}_PORT": str(port),
        f"LKERN_{name.upper()}_GRPC_PORT": str(free_port()),
        "LKERN_LOG_LEVEL": "info",
        # The fuzzer is one user sending thousands of requests: it tests the API, not the limiter.
        "LKERN_RATE_LIMIT_REQUESTS": "1000000",
        "LKERN_ANONYMOUS_RATE_LIMIT_REQUESTS": "1000000",
        **(extra_env or {}),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    args = ["serve", name, *(["--workers", str(workers)] if workers > 1 else [])]
    process = LkernProcess(args, env=env, log_path=data_dir / f"{name}.log")
    base_url = f"http://127.0.0.1:{port}"
    process.start()
    return ServedService(process, base_url, data_dir, env)


def identity_env(port: int) -> dict[str, str]:
    """What a process needs to sign (identity) or verify (others) the tests' tokens."""
    return {"LKERN_SIGNING_KEY": TEST_KEY_PEM, "LKERN_IDENTITY_URL": f"http://127.0.0.1:{port}"}


def serve_identity(work_dir: Path) -> ServedService:
    """``lkern serve identity`` signing with the tests' key, so ``bearer()`` tokens verify."""
    port = free_port()
    return serve(
        "identity",
        work_dir,
        {
            **identity_env(port),
            "LKERN_IDENTITY_PORT": str(port),
            "LKERN_ADMIN_PASSWORD": SERVED_ADMIN_PASSWORD,
        },
    )


@pytest.fixture(scope="session")
def served_identity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedService]:
    service = serve_identity(tmp_path_factory.mktemp("served-identity"))
    yield service
    service.process.stop()


@pytest.fixture(scope="session")
def identity_url(served_identity: ServedService) -> dict[str, str]:
    return identity_env(int(served_identity.base_url.rsplit(":", 1)[1]))


@pytest.fixture(scope="session")
def served_contacts(
    tmp_path_factory: pytest.TempPathFactory, identity_url: dict[str, str]
) -> Iterator[ServedService]:
    """One long-lived ``lkern serve contacts`` on SQLite, shared by the system tests."""
    service = serve("contacts", tmp_path_factory.mktemp("served-contacts"), identity_url)
    yield service
    service.process.stop()


@pytest.fixture(scope="session")
def served_inventory(
    tmp_path_factory: pytest.TempPathFactory, identity_url: dict[str, str]
) -> Iterator[ServedService]:
    """``lkern serve inventory`` on SQLite and local files."""
    service = serve("inventory", tmp_path_factory.mktemp("served-inventory"), identity_url)
    yield service
    service.process.stop()


@pytest.fixture(scope="session")
def served_orders(
    served_contacts: ServedService,
    served_inventory: ServedService,
    tmp_path_factory: pytest.TempPathFactory,
    identity_url: dict[str, str],
) -> Iterator[ServedService]:
    """``lkern serve orders`` on SQLite, validating contacts against ``served_contacts``
    and parts against ``served_inventory``."""
    grpc_port = served_contacts.env["LKERN_CONTACTS_GRPC_PORT"]
    inventory_port = served_inventory.env["LKERN_INVENTORY_GRPC_PORT"]
    service = serve(
        "orders",
        tmp_path_factory.mktemp("served-orders"),
        {
            "LKERN_CONTACTS_GRPC_TARGET": f"127.0.0.1:{grpc_port}",
            "LKERN_INVENTORY_GRPC_TARGET": f"127.0.0.1:{inventory_port}",
            **identity_url,
        },
    )
    yield service
    service.process.stop()


@pytest.fixture(scope="session")
def served_issues(
    served_identity: ServedService,
    served_contacts: ServedService,
    tmp_path_factory: pytest.TempPathFactory,
    identity_url: dict[str, str],
) -> Iterator[ServedService]:
    """``lkern serve issues`` on SQLite and local files, checking assignees with
    ``served_identity`` and contacts with ``served_contacts``."""
    service = serve(
        "issues",
        tmp_path_factory.mktemp("served-issues"),
        {
            "LKERN_IDENTITY_GRPC_TARGET": (
                f"127.0.0.1:{served_identity.env['LKERN_IDENTITY_GRPC_PORT']}"
            ),
            "LKERN_CONTACTS_GRPC_TARGET": (
                f"127.0.0.1:{served_contacts.env['LKERN_CONTACTS_GRPC_PORT']}"
            ),
            **identity_url,
        },
    )
    yield service
    service.process.stop()
