"""deploy/k8s: valid against the Kubernetes schemas (offline), renderable, as SPEC §1 and §10."""

from __future__ import annotations

import os
from typing import Any

import kubernetes_validate
import pytest
import yaml

from lkern.console.settings import ConsoleSettings
from lkern.platform.settings import Settings
from lkern.services import SERVICES
from tests.deploy.manifests import (
    CONSOLE,
    CONSOLE_PORT,
    K8S_BASE,
    LIVE_PATH,
    READY_PATH,
    SPEC_PORTS,
    by_kind,
    console_args,
    k8s_documents,
    k8s_resources,
    k8s_service_name,
    run_ok,
    tool,
    unread_variables,
)

CONSOLE_NAME = f"lkern-{CONSOLE}"
#: The schema version the manifests are held to (kubernetes-validate ships it).
KUBERNETES_VERSION = kubernetes_validate.latest_version()


@pytest.fixture(scope="module")
def resources() -> list[dict[str, Any]]:
    return k8s_resources()


def test_the_kustomization_lists_every_manifest() -> None:
    listed = set(k8s_documents())
    on_disk = {path.name for path in K8S_BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize("name", sorted(k8s_documents()))
def test_valid_against_the_kubernetes_schemas(name: str) -> None:
    for document in k8s_documents()[name]:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def identity(document: dict[str, Any]) -> tuple[str, str]:
    return document["kind"], document["metadata"]["name"]


def test_kubectl_kustomize_renders_the_base(resources: list[dict[str, Any]]) -> None:
    kubectl = tool("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the loader tests above read the base instead")
    rendered = [
        doc for doc in yaml.safe_load_all(run_ok([kubectl, "kustomize", str(K8S_BASE)])) if doc
    ]
    assert sorted(map(identity, rendered)) == sorted(map(identity, resources))
    for document in rendered:
        assert document["metadata"]["labels"]["app.kubernetes.io/part-of"] == "lkern"
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        if document["kind"] in ("Deployment", "Job"):
            (container,) = document["spec"]["template"]["spec"]["containers"]
            assert container["image"].startswith("lkern:"), "the kustomization pins the tag"


def test_every_spec_service_has_its_resources(resources: list[dict[str, Any]]) -> None:
    names = {f"lkern-{service}" for service in SPEC_PORTS}
    assert set(by_kind(resources, "Deployment")) == names | {CONSOLE_NAME}
    assert set(by_kind(resources, "Service")) == names | {CONSOLE_NAME}
    assert set(by_kind(resources, "Job")) == {f"{name}-migrate" for name in names}
    assert set(by_kind(resources, "ConfigMap")) == names | {"lkern-config", CONSOLE_NAME}
    assert set(SERVICES) <= set(SPEC_PORTS)


def services_only(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The resources of the services, without the console's (tested on its own)."""
    return {name: resource for name, resource in resources.items() if name != CONSOLE_NAME}


def pod_spec(resource: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = resource["spec"]["template"]["spec"]
    return spec


def shutdown_grace(resources: list[dict[str, Any]]) -> float:
    config = by_kind(resources, "ConfigMap")["lkern-config"]["data"]
    default = Settings.model_fields["shutdown_grace_seconds"].default
    return float(config.get("LKERN_SHUTDOWN_GRACE_SECONDS", default))


def test_deployments_as_section_10_asks(resources: list[dict[str, Any]]) -> None:
    grace = shutdown_grace(resources)
    for name, deployment in services_only(by_kind(resources, "Deployment")).items():
        service = k8s_service_name(name)
        assert deployment["spec"]["replicas"] == 2, name
        pod = pod_spec(deployment)
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        (container,) = pod["containers"]
        assert container["args"] == ["serve", service]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        rest, grpc = SPEC_PORTS[service]
        assert ports == ({"http": rest, "grpc": grpc} if grpc else {"http": rest}), name
        registered = SERVICES.get(service)
        if registered is not None:
            assert (registered.rest_port, registered.grpc_port) == (rest, grpc)
        readiness, liveness = container["readinessProbe"], container["livenessProbe"]
        assert readiness["httpGet"] == {"path": READY_PATH, "port": "http"}
        assert liveness["httpGet"] == {"path": LIVE_PATH, "port": "http"}
        pause = container["lifecycle"]["preStop"]["exec"]["command"]
        assert pause[0] == "sleep"
        # The kubelet's SIGKILL comes after the preStop pause plus the shutdown grace.
        assert pod["terminationGracePeriodSeconds"] > float(pause[1]) + grace, name


def test_services_expose_the_spec_ports(resources: list[dict[str, Any]]) -> None:
    deployments = by_kind(resources, "Deployment")
    for name, service in services_only(by_kind(resources, "Service")).items():
        rest, grpc = SPEC_PORTS[k8s_service_name(name)]
        ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
        expected = {"http": (rest, "http")} | ({"grpc": (grpc, "grpc")} if grpc else {})
        assert ports == expected, name
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert service["spec"]["selector"]["app.kubernetes.io/component"] == "server"


def test_migration_jobs(resources: list[dict[str, Any]]) -> None:
    for name, job in by_kind(resources, "Job").items():
        service = k8s_service_name(name)
        pod = pod_spec(job)
        (container,) = pod["containers"]
        assert container["args"] == ["migrate", service, "upgrade"]
        assert pod["restartPolicy"] == "Never"
        assert pod["securityContext"]["runAsNonRoot"] is True
        labels = job["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "migration", "never behind the Service"
        assert database_secret(container) == (f"lkern-{service}", "database-url")


def database_secret(container: dict[str, Any]) -> tuple[str, str]:
    (entry,) = [env for env in container["env"] if env["name"] == "LKERN_DATABASE_URL"]
    reference = entry["valueFrom"]["secretKeyRef"]
    return reference["name"], reference["key"]


def container_variables(
    container: dict[str, Any], config_maps: dict[str, dict[str, Any]]
) -> dict[str, str]:
    """Each variable the container gets, and where from (``ConfigMap/NAME``, ``Secret/NAME``)."""
    variables: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in config_maps, f"{name} is not a ConfigMap of the base"
        variables |= dict.fromkeys(config_maps[name].get("data") or {}, f"ConfigMap/{name}")
    for env in container.get("env", []):
        reference = env["valueFrom"]["secretKeyRef"]
        variables[env["name"]] = f"Secret/{reference['name']}"
    return variables


def test_every_lkern_variable_is_one_the_settings_read(resources: list[dict[str, Any]]) -> None:
    config_maps = by_kind(resources, "ConfigMap")
    unread = {}
    for kind in ("Deployment", "Job"):
        for name, resource in by_kind(resources, kind).items():
            (container,) = pod_spec(resource)["containers"]
            names = set(container_variables(container, config_maps))
            if missing := unread_variables(k8s_service_name(name), names):
                unread[name] = missing
    assert not unread, f"no settings field reads these: {unread}"


#: What a production deployment must set (Settings.production_problems and identity's),
#: and it must come from a Secret.
SECRET_SETTINGS = {"LKERN_DATABASE_URL", "LKERN_SERVICE_SECRET"}


def test_secrets_come_from_secrets_and_production_is_complete(
    resources: list[dict[str, Any]],
) -> None:
    config_maps = by_kind(resources, "ConfigMap")
    assert config_maps["lkern-config"]["data"]["LKERN_ENV"] == "production"
    for name, deployment in services_only(by_kind(resources, "Deployment")).items():
        service = k8s_service_name(name)
        (container,) = pod_spec(deployment)["containers"]
        variables = container_variables(container, config_maps)
        required = SECRET_SETTINGS | ({"LKERN_SIGNING_KEY"} if service == "identity" else set())
        for variable in required:
            assert variables.get(variable, "").startswith("Secret/"), (name, variable)
        assert not variables["LKERN_BROKER_URL"].startswith("Secret/")
        secret_like = ("SECRET", "PASSWORD", "KEY", "DATABASE_URL")
        for variable, source in variables.items():
            if any(word in variable for word in secret_like):
                assert source.startswith("Secret/"), (name, variable)
    for name, config_map in config_maps.items():
        for variable, value in (config_map.get("data") or {}).items():
            assert "://" not in value or "@" not in value, f"{name}: {variable} holds a credential"


def deployment_environment(service: str, resources: list[dict[str, Any]]) -> dict[str, str]:
    """The environment a pod of ``service`` gets, Secret values stood in for."""
    config_maps = by_kind(resources, "ConfigMap")
    (container,) = pod_spec(by_kind(resources, "Deployment")[f"lkern-{service}"])["containers"]
    env = {}
    for variable, source in container_variables(container, config_maps).items():
        if source.startswith("ConfigMap/"):
            env[variable] = config_maps[source.removeprefix("ConfigMap/")]["data"][variable]
        elif variable == "LKERN_DATABASE_URL":
            env[variable] = f"postgresql+asyncpg://lkern:secret@postgres:5432/{service}"
        elif variable not in ("LKERN_REDIS_URL", "LKERN_ADMIN_EMAIL", "LKERN_ADMIN_PASSWORD"):
            env[variable] = "from-a-secret"  # the optional Secret keys stay unset
    return env


def service_settings(service: str) -> Settings:
    return SERVICES[service].load_settings()


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_base_is_fit_for_production(
    service: str, resources: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in [name for name in os.environ if name.startswith("LKERN_")]:
        monkeypatch.delenv(variable)
    monkeypatch.chdir(K8S_BASE)  # no stray .env file
    env = deployment_environment(service, resources)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    settings = service_settings(service)
    assert settings.env.value == "production"
    assert settings.production_problems(service) == []
    monkeypatch.delenv("LKERN_SERVICE_SECRET")
    assert service_settings(service).production_problems(service), "the check does look"


def test_the_console_shows_every_service_and_holds_no_secret(
    resources: list[dict[str, Any]],
) -> None:
    deployment = by_kind(resources, "Deployment")[CONSOLE_NAME]
    # Its sessions live in its process: one replica, never two at once.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = pod_spec(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    params = console_args(container["args"])
    assert dict(value.split("=", 1) for value in params["named"]) == {
        service: f"http://lkern-{service}:{rest}" for service, (rest, _) in SPEC_PORTS.items()
    }
    assert params["identity_url"] == f"http://lkern-identity:{SPEC_PORTS['identity'][0]}"
    assert params["host"] == "0.0.0.0"
    assert container["ports"] == [{"name": "http", "containerPort": CONSOLE_PORT}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": LIVE_PATH, "port": "http"}
    variables = container_variables(container, by_kind(resources, "ConfigMap"))
    assert not any(source.startswith("Secret/") for source in variables.values())
    config = by_kind(resources, "ConfigMap")[CONSOLE_NAME]["data"]
    assert ConsoleSettings(public_origins=config["LKERN_CONSOLE_PUBLIC_ORIGINS"]).secure_cookie()
    service = by_kind(resources, "Service")[CONSOLE_NAME]
    assert service["spec"]["ports"] == [
        {"name": "http", "port": CONSOLE_PORT, "targetPort": "http"}
    ]
