"""What the deployment files say, read for the tests of tests/deploy/ (offline, no engine)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lkern.console.settings import ConsoleSettings
from lkern.platform.settings import Settings
from lkern.services import SERVICES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
K8S_BASE = ROOT / "deploy" / "k8s"

#: SPEC §1: each service's REST and gRPC port.
SPEC_PORTS: dict[str, tuple[int, int | None]] = {
    "identity": (8100, 5100),
    "contacts": (8101, 5101),
    "orders": (8102, None),
    "issues": (8103, None),
    "inventory": (8104, 5104),
}
READY_PATH = "/health/ready"
LIVE_PATH = "/health"
#: SPEC §13: the operator console's port; it is not a service (no database, no events).
CONSOLE = "console"
CONSOLE_PORT = 8099


def tool(name: str) -> str | None:
    """An executable of this virtualenv (dev dependencies), else one on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def run_ok(command: list[str], cwd: Path = ROOT) -> str:
    """``command``'s output; the test fails with what it said when it does not succeed."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def settings_fields(service: str) -> set[str]:
    """The fields ``service``'s settings class reads (the platform's while it is not
    registered: inventory is still being built). The console reads its own
    (``LKERN_CONSOLE_*``) and the platform's, for logging."""
    if service == CONSOLE:
        return set(ConsoleSettings.model_fields) | set(Settings.model_fields)
    definition = SERVICES.get(service)
    settings_class = definition.settings_class if definition is not None else Settings
    return set(settings_class.model_fields)


def read_as(service: str, variable: str, fields: set[str]) -> str | None:
    """The field ``variable`` sets for ``service``: ``LKERN_<SERVICE>_<FIELD>`` or
    ``LKERN_<FIELD>`` (platform/settings.py, load_settings); None if none reads it."""
    name = variable.removeprefix("LKERN_").lower()
    specific = name.removeprefix(f"{service}_")
    if specific != name and specific in fields:
        return specific
    return name if name in fields else None


def unread_variables(service: str, variables: set[str]) -> list[str]:
    """The ``LKERN_*`` names among ``variables`` that ``service``'s settings would ignore."""
    fields = settings_fields(service)
    return sorted(
        variable
        for variable in variables
        if variable.startswith("LKERN_") and read_as(service, variable, fields) is None
    )


def environment(value: Mapping[str, Any] | list[str] | None) -> dict[str, Any]:
    """A compose ``environment`` (mapping or ``NAME=value`` list) as a mapping."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    return {
        name: (rest[0] if rest else None)
        for name, *rest in (entry.split("=", 1) for entry in value)
    }


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


@dataclass(frozen=True)
class ComposeContainer:
    """One compose service running the L-KERN image."""

    name: str
    verb: str
    service: str
    spec: dict[str, Any]


def lkern_containers(compose: dict[str, Any]) -> Iterator[ComposeContainer]:
    """The containers that serve or migrate a service (the console is none: console_args)."""
    for name, spec in compose["services"].items():
        if "LKERN_IMAGE" not in str(spec.get("image", "")) or spec["command"][0] == CONSOLE:
            continue
        command = spec["command"]
        yield ComposeContainer(name, command[0], command[1], spec)


def console_args(args: list[str]) -> dict[str, Any]:
    """``lkern console`` arguments as the command itself parses them."""
    from lkern.cli import main

    assert args[0] == CONSOLE
    command = main.commands[CONSOLE]
    params: dict[str, Any] = command.make_context(CONSOLE, list(args[1:])).params
    return params


def k8s_documents() -> dict[str, list[dict[str, Any]]]:
    """Every manifest of the kustomize base, by file, as the kustomization lists them."""
    kustomization = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    return {
        name: [doc for doc in yaml.safe_load_all((K8S_BASE / name).read_text()) if doc]
        for name in kustomization["resources"]
    }


def k8s_resources() -> list[dict[str, Any]]:
    return [doc for docs in k8s_documents().values() for doc in docs]


def by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in resources if doc["kind"] == kind}


def k8s_service_name(resource_name: str) -> str:
    """``identity`` of ``lkern-identity`` and ``lkern-identity-migrate``."""
    match = re.fullmatch(r"lkern-([a-z]+)(-migrate)?", resource_name)
    assert match, resource_name
    return match.group(1)
