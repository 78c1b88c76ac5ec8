"""compose.yaml: valid Compose, every LKERN_* variable read, ports and health checks as SPEC §1."""

from __future__ import annotations

import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from lkern.console.settings import ConsoleSettings
from lkern.services import SERVICES
from tests.deploy.manifests import (
    COMPOSE_FILE,
    CONSOLE,
    CONSOLE_PORT,
    LIVE_PATH,
    READY_PATH,
    ROOT,
    SPEC_PORTS,
    console_args,
    environment,
    lkern_containers,
    load_compose,
    run_ok,
    tool,
    unread_variables,
)
from tests.support.tools import docker_compose

INFRASTRUCTURE = {"postgres", "kafka", "minio"}
TRACING = {"otel-collector", "jaeger"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def test_valid_against_the_compose_specification() -> None:
    checker = tool("check-jsonschema")
    assert checker, "check-jsonschema is a dev dependency"
    run_ok([checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)])


def compose_command() -> list[str]:
    """``docker compose`` where the plugin is installed, else Debian's ``docker-compose``
    (installed when missing; mandatory in CI)."""
    docker = tool("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = tool("docker-compose")
    return [standalone] if standalone else [str(docker_compose())]


@pytest.mark.parametrize("profile", [None, "tracing"])
def test_compose_config_accepts_it(profile: str | None) -> None:
    command = compose_command()
    profiles = ["--profile", profile] if profile else []
    listed = run_ok([*command, "--file", str(COMPOSE_FILE), *profiles, "config", "--services"])
    expected = {*INFRASTRUCTURE, *SPEC_PORTS, *(f"migrate-{s}" for s in SPEC_PORTS), CONSOLE}
    if profile:
        expected |= TRACING
    # docker-compose 1.29 lists profiled services without their profile too.
    assert expected <= set(listed.split()) <= expected | TRACING


def test_every_spec_service_is_served_and_migrated(compose: dict[str, Any]) -> None:
    containers = list(lkern_containers(compose))
    served = {c.service: c.name for c in containers if c.verb == "serve"}
    migrated = {c.service: c for c in containers if c.verb == "migrate"}
    assert set(served) == set(SPEC_PORTS) >= set(SERVICES)
    assert set(migrated) == set(SPEC_PORTS)
    for service, name in served.items():
        assert name == service
        migration = migrated[service]
        assert migration.name == f"migrate-{service}"
        assert migration.spec["command"] == ["migrate", service, "upgrade"]
        assert migration.spec["restart"] == "no"
        assert migration.spec["depends_on"]["postgres"]["condition"] == "service_healthy"
        depends = compose["services"][name]["depends_on"]
        assert depends[migration.name]["condition"] == "service_completed_successfully"


def test_ports_and_health_checks_match_the_spec(compose: dict[str, Any]) -> None:
    for container in lkern_containers(compose):
        if container.verb != "serve":
            continue
        rest_port, _ = SPEC_PORTS[container.service]
        registered = SERVICES.get(container.service)
        if registered is not None:
            assert registered.rest_port == rest_port
        assert container.spec["ports"] == [f"{rest_port}:{rest_port}"], container.name
        test = container.spec["healthcheck"]["test"]
        assert test[:2] == ["CMD", "lkern-healthcheck"], container.name
        url = urlsplit(test[2])
        assert (url.hostname, url.port, url.path) == ("127.0.0.1", rest_port, READY_PATH)


def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        if name.startswith("migrate-"):
            assert spec["healthcheck"] == {"disable": True}, "a one-shot job"
        elif name not in TRACING:
            assert spec["healthcheck"]["test"], name
    for name in INFRASTRUCTURE:
        # Everything waits for the infrastructure to answer, not just to start.
        for dependant in compose["services"].values():
            condition = dependant.get("depends_on", {}).get(name, {}).get("condition")
            assert condition in (None, "service_healthy")


def test_every_lkern_variable_is_one_the_settings_read(compose: dict[str, Any]) -> None:
    unread = {}
    for container in lkern_containers(compose):
        names = set(environment(container.spec.get("environment")))
        if missing := unread_variables(container.service, names):
            unread[container.name] = missing
    console = compose["services"][CONSOLE]
    if missing := unread_variables(CONSOLE, set(environment(console.get("environment")))):
        unread[CONSOLE] = missing
    assert not unread, f"no settings field reads these: {unread}"


def test_production_backends_for_every_service(compose: dict[str, Any]) -> None:
    for container in lkern_containers(compose):
        env = environment(container.spec.get("environment"))
        specific = f"LKERN_{container.service.upper()}_DATABASE_URL"
        url = env.get("LKERN_DATABASE_URL") or env[specific]
        assert url.startswith("postgresql+asyncpg://") and url.endswith(f"/{container.service}")
        if container.verb == "serve":
            assert env["LKERN_BROKER_URL"] == "kafka://kafka:9092"
            assert env["LKERN_SERVICE_SECRET"]
    databases = (ROOT / "deploy" / "compose" / "postgres-databases.sql").read_text()
    for service in SPEC_PORTS:
        assert f"CREATE DATABASE {service};" in databases


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        image = spec["image"]
        if "LKERN_IMAGE" in image:
            continue
        tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest" and any(ch.isdigit() for ch in tag), name


def test_kafka_is_a_single_kraft_node_of_the_official_image(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"


def test_tracing_is_a_profile_and_off_without_it(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in TRACING:
        assert services[name]["profiles"] == ["tracing"]
    for name, spec in services.items():
        if name not in TRACING:
            assert "profiles" not in spec, name
    for container in lkern_containers(compose):
        env = environment(container.spec.get("environment"))
        if container.verb == "serve":
            # No value: the container has it only when it is set where compose runs.
            assert "OTEL_EXPORTER_OTLP_ENDPOINT" in env
            assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] is None
    config = yaml.safe_load((ROOT / "deploy" / "compose" / "otel-collector.yaml").read_text())
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    (exporter,) = pipeline["exporters"]
    assert config["exporters"][exporter]["endpoint"] == "jaeger:4317"
    mounted = services["otel-collector"]["volumes"][0].split(":")[0]
    assert (ROOT / mounted).resolve() == ROOT / "deploy" / "compose" / "otel-collector.yaml"


def test_the_console_shows_every_served_service(compose: dict[str, Any]) -> None:
    console = compose["services"][CONSOLE]
    assert "LKERN_IMAGE" in console["image"]
    params = console_args(console["command"])
    served = {c.service: c.name for c in lkern_containers(compose) if c.verb == "serve"}
    assert dict(value.split("=", 1) for value in params["named"]) == {
        service: f"http://{name}:{SPEC_PORTS[service][0]}" for service, name in served.items()
    }
    assert params["identity_url"] == f"http://identity:{SPEC_PORTS['identity'][0]}"
    assert params["host"] == "0.0.0.0"
    assert console["ports"] == [f"{CONSOLE_PORT}:{CONSOLE_PORT}"]
    test = console["healthcheck"]["test"]
    url = urlsplit(test[2])
    assert test[:2] == ["CMD", "lkern-healthcheck"]
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", CONSOLE_PORT, LIVE_PATH)
    assert console["depends_on"]["identity"]["condition"] == "service_healthy"
    # The origins a browser on the machine uses for the published port, and no secret.
    env = environment(console["environment"])
    origins = env["LKERN_CONSOLE_PUBLIC_ORIGINS"].split(":-", 1)[1].rstrip("}")
    settings = ConsoleSettings(public_origins=origins, host="0.0.0.0")
    assert f"http://localhost:{CONSOLE_PORT}" in settings.origins()
    assert not any(word in name for name in env for word in ("SECRET", "PASSWORD", "KEY"))
