"""Fixtures that run services as separate processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import LkernProcess, free_port


class ServedService:
    def __init__(
        self, process: LkernProcess, base_url: str, data_dir: Path, env: dict[str, str]
    ) -> None:
        self.process = process
        self.base_url = base_url
        self.data_dir = data_dir
        self.env = env


def serve(name: str, data_dir: Path, extra_env: dict[str, str] | None = None) -> ServedService:
    service = start(name, data_dir, extra_env)
    service.process.wait_healthy(service.base_url)
    return service


def start(name: str, data_dir: Path, extra_env: dict[str, str] | None = None) -> ServedService:
    """``lkern serve NAME`` on free ports, not yet waited for."""
    port = free_port()
    env = {
        "LKERN_DATA_DIR": str(data_dir),
        f"LKERN_{name.upper()}_PORT": str(port),
        f"LKERN_{name.upper()}_GRPC_PORT": str(free_port()),
        "LKERN_LOG_LEVEL": "info",
        **(extra_env or {}),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    process = LkernProcess(["serve", name], env=env, log_path=data_dir / f"{name}.log")
    base_url = f"http://127.0.0.1:{port}"
    process.start()
    return ServedService(process, base_url, data_dir, env)


@pytest.fixture(scope="session")
def served_contacts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedService]:
    """One long-lived ``lkern serve contacts`` on SQLite, shared by the system tests."""
    service = serve("contacts", tmp_path_factory.mktemp("served-contacts"))
    yield service
    service.process.stop()


@pytest.fixture(scope="session")
def served_orders(
    served_contacts: ServedService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedService]:
    """``lkern serve orders`` on SQLite, validating contacts against ``served_contacts``."""
    grpc_port = served_contacts.env["LKERN_CONTACTS_GRPC_PORT"]
    service = serve(
        "orders",
        tmp_path_factory.mktemp("served-orders"),
        {"LKERN_CONTACTS_GRPC_TARGET": f"127.0.0.1:{grpc_port}"},
    )
    yield service
    service.process.stop()
