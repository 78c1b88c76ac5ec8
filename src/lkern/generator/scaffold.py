"""Writes a new service into a source checkout: its package, events, proto, first
migration, tests and registration, from the templates beside this module.

Everything is checked before anything is written (a taken name, code or port
is refused), and everything is rendered before the first file is written, so
a refusal leaves the tree as it was. The steps that need tools of the checkout
(``protoc`` for ``--grpc``, ``ruff`` to sort and format, ``lkern events
schema`` for docs/events) run after; if one fails, the files written are taken
back.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mako.template import Template

from lkern.platform.db import PlatformTables
from lkern.platform.migrations import platform_branch
from lkern.platform.service import ServiceDefinition

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
#: The source checkout this ``lkern`` runs from (``src/lkern/generator`` is three below it).
CHECKOUT = Path(__file__).resolve().parents[3]

# Lower-case letters only: the name is a Python package, a table, a URL segment,
# an environment-variable infix (LKERN_<NAME>_…) and a Kubernetes resource name.
_NAME = re.compile(r"^[a-z]{3,30}$")
_CODE = re.compile(r"^lkms\d{3}$")
_PREFIX = re.compile(r"^[A-Z]{2,4}$")
#: Names the checkout already uses for packages of its own beside the services.
_RESERVED = frozenset({"platform", "events", "clients", "proto", "generator", "services", "cli"})


class Refused(ValueError):
    """The service cannot be generated as asked; nothing was written."""


@dataclass(frozen=True)
class NewService:
    name: str  # "widgets"
    code: str  # "lkms150"
    port: int
    grpc_port: int | None = None
    prefix: str | None = None
    files: bool = False
    grpc: bool = False
    description: str | None = None

    @property
    def noun(self) -> str:
        """The one resource, singular: ``widget`` of ``widgets``."""
        if self.name.endswith("ies"):
            return self.name[:-3] + "y"
        if self.name.endswith(("sses", "xes", "ches", "shes")):
            return self.name[:-2]
        if self.name.endswith("s") and not self.name.endswith("ss"):
            return self.name[:-1]
        return self.name

    @property
    def platform_tables(self) -> frozenset[PlatformTables]:
        """What ``ServiceDefinition.platform_tables`` will say of it: every generated
        service emits events and, like every service but identity, consumes the
        platform's revocations of users (§9); codes need their counters."""
        groups = {
            PlatformTables.DELETION_AUDITS,
            PlatformTables.REVOCATIONS,
            PlatformTables.OUTBOX,
            PlatformTables.INBOX,
        }
        if self.prefix:
            groups.add(PlatformTables.CODE_COUNTERS)
        return frozenset(groups)

    def context(self) -> dict[str, Any]:
        title = self.name.capitalize()
        description = self.description or f"The {self.name} of the business."
        # "Gadgets (lkms190): the gadgets of the business." — unless it starts with a name.
        summary = (
            description[:1].lower() + description[1:] if description[1:2].islower() else description
        )
        return {
            "name": self.name,
            "NAME": self.name.upper(),
            "Title": title,
            "whose": f"{title}'" if title.endswith("s") else f"{title}'s",
            "noun": self.noun,
            "Noun": self.noun.capitalize(),
            "NOUN": self.noun.upper(),
            "code": self.code,
            "port": self.port,
            "grpc_port": self.grpc_port,
            "prefix": self.prefix,
            "files": self.files,
            "grpc": self.grpc,
            "description": description,
            "summary": summary,
            "depends_on": [
                platform_branch(group) for group in PlatformTables if group in self.platform_tables
            ],
            # Alembic's own form of revision ids.
            "revision": uuid.uuid4().hex[-12:],
        }


def refusals(spec: NewService, services: Mapping[str, ServiceDefinition], root: Path) -> list[str]:
    """Why ``spec`` cannot be generated in ``root`` beside ``services``; empty when it can."""
    problems = []
    if not _NAME.match(spec.name):
        problems.append(f"the name {spec.name!r} must be 3-30 lower-case letters (a-z)")
    elif spec.name in services or spec.name in _RESERVED:
        problems.append(f"the name {spec.name!r} is taken")
    elif (root / "src" / "lkern" / spec.name).exists():
        problems.append(f"src/lkern/{spec.name} already exists")
    if not _CODE.match(spec.code):
        problems.append(f"the code {spec.code!r} must look like lkms150")
    for other in services.values():
        if other.code == spec.code:
            problems.append(f"the code {spec.code} is taken by {other.name}")
    if spec.prefix is not None and not _PREFIX.match(spec.prefix):
        problems.append(f"the prefix {spec.prefix!r} must be 2-4 capital letters")
    if spec.description is not None and not re.fullmatch(r'[^"\\\n]{1,200}', spec.description):
        problems.append('the description must be one line of 1-200 characters without " or \\')
    if spec.grpc and spec.grpc_port is None:
        problems.append("--grpc needs --grpc-port")
    if spec.grpc_port is not None and not spec.grpc:
        problems.append("--grpc-port is for a service with --grpc")
    ports = [spec.port] + ([spec.grpc_port] if spec.grpc_port is not None else [])
    for port in ports:
        if not 1024 <= port <= 65535:
            problems.append(f"the port {port} must be between 1024 and 65535")
        for other in services.values():
            if port in (other.rest_port, other.grpc_port):
                problems.append(f"the port {port} is taken by {other.name}")
    if spec.grpc_port == spec.port:
        problems.append("the REST and gRPC ports must differ")
    for path in _REGISTRATIONS:
        if not (root / path).is_file():
            problems.append(f"{path} is missing: {root} is not an L-KERN source checkout")
    return problems


#: What the generator edits besides writing new files.
_SERVICES_MODULE = Path("src/lkern/services.py")
_CONFTEST = Path("tests/conftest.py")
_COMPOSE = Path("compose.yaml")
_DATABASES = Path("deploy/compose/postgres-databases.sql")
_HEALTHCHECK = Path("deploy/docker/healthcheck.py")
_KUSTOMIZATION = Path("deploy/k8s/kustomization.yaml")
_SPEC_PORTS = Path("tests/deploy/manifests.py")
_DOCKERFILE = Path("Dockerfile")
_REGISTRATIONS = (
    _DOCKERFILE,
    _SERVICES_MODULE,
    _CONFTEST,
    _COMPOSE,
    _DATABASES,
    _HEALTHCHECK,
    _KUSTOMIZATION,
    _SPEC_PORTS,
)


def render(spec: NewService) -> dict[Path, str]:
    """Every new file, by its path in the checkout."""
    context = spec.context()
    name, noun = spec.name, spec.noun
    package = Path("src/lkern") / name
    files = {
        package / "__init__.py": "package/__init__.py",
        package / "enums.py": "package/enums.py",
        package / "models.py": "package/models.py",
        package / "rules.py": "package/rules.py",
        package / "schemas.py": "package/schemas.py",
        package / "service.py": "package/service.py",
        package / "views.py": "package/views.py",
        package / "definition.py": "package/definition.py",
        package / "migrations" / f"0001_{name}.py": "migrations/first.py",
        Path("src/lkern/events") / f"{name}.py": "events/service.py",
        Path("tests/api") / f"test_{name}.py": "tests/api.py",
        Path("tests/events") / f"test_{name}_events.py": "tests/events.py",
        Path("tests/unit") / f"test_{noun}_rules.py": "tests/rules.py",
    }
    files[Path("deploy/k8s") / f"{name}.yaml"] = "deploy/k8s.yaml"
    if spec.grpc:
        files[package / "grpc.py"] = "package/grpc.py"
        files[Path("proto/lkern/proto") / name / "v1" / f"{name}.proto"] = "proto/service.proto"
        files[Path("tests/rpc") / f"test_{name}_grpc.py"] = "tests/grpc.py"
    return {path: _render(template, context) for path, template in files.items()}


def _render(template: str, context: dict[str, Any]) -> str:
    text: str = Template(filename=str(TEMPLATES / f"{template}.mako")).render(**context)
    return text


def registered(spec: NewService, services_module: str) -> str:
    """``services.py`` with the service imported and added last to ``SERVICES``."""
    constant = spec.name.upper()
    line = f"from lkern.{spec.name}.definition import {constant}\n"
    anchor = "from lkern.platform.service import ServiceDefinition\n"
    listed = re.compile(r"(for definition in \()([^)]*)(\))", re.DOTALL)
    if anchor not in services_module or not listed.search(services_module):
        raise Refused(f"{_SERVICES_MODULE} is not in the shape the generator knows")
    # ruff sorts the import into place afterwards.
    text = services_module.replace(anchor, line + anchor, 1)
    return listed.sub(
        lambda match: match[1] + match[2].rstrip().rstrip(",") + f", {constant}" + match[3],
        text,
        count=1,
    )


def edits(spec: NewService, root: Path) -> dict[Path, str]:
    """The files that list every service, each with the new one added: its registration,
    its test fixtures and its deployment (compose, the PostgreSQL databases, the image's
    health check, the Kubernetes base and the ports the deployment tests hold it to)."""
    context = spec.context()
    text = {path: (root / path).read_text() for path in _REGISTRATIONS}
    migration = _render("deploy/compose-migration.yaml", context)
    served = "\n" + _render("deploy/compose-service.yaml", context).strip("\n") + "\n"
    compose = _after_last(
        text[_COMPOSE], _COMPOSE, r"^  migrate-[a-z]+:\n    <<: \*migration\n", migration
    )
    compose = _after_last(compose, _COMPOSE, r"^  [a-z]+:\n    <<: \*lkern-image\n", served)
    grpc_port = spec.grpc_port if spec.grpc else None
    ports = " ".join(str(port) for port in (spec.port, grpc_port) if port is not None)
    exposed = re.compile(r"^(EXPOSE .*)$", re.MULTILINE)
    if not exposed.search(text[_DOCKERFILE]):
        raise Refused(f"{_DOCKERFILE} is not in the shape the generator knows")
    return {
        _DOCKERFILE: exposed.sub(lambda match: f"{match[1]} {ports}", text[_DOCKERFILE], count=1),
        _SERVICES_MODULE: registered(spec, text[_SERVICES_MODULE]),
        _CONFTEST: text[_CONFTEST] + _render("tests/conftest.py", context),
        _COMPOSE: compose,
        _DATABASES: text[_DATABASES] + f"CREATE DATABASE {spec.name};\n",
        _HEALTHCHECK: _after_last(
            text[_HEALTHCHECK],
            _HEALTHCHECK,
            r"^REST_PORTS = \{\n",
            f'    "{spec.name}": {spec.port},\n',
        ),
        _KUSTOMIZATION: _after_last(
            text[_KUSTOMIZATION],
            _KUSTOMIZATION,
            r"^resources:\n",
            f"  - {spec.name}.yaml\n",
            "  - ",
        ),
        _SPEC_PORTS: _after_last(
            text[_SPEC_PORTS],
            _SPEC_PORTS,
            r"^SPEC_PORTS: .* = \{\n",
            f'    "{spec.name}": ({spec.port}, {grpc_port}),\n',
        ),
    }


def _after_last(text: str, path: Path, header: str, addition: str, indent: str = "    ") -> str:
    """``text`` with ``addition`` after the lines indented by ``indent`` that follow the
    last line matching ``header``: the last block of its kind, or the end of a listing."""
    found = list(re.finditer(f"{header}(?:{re.escape(indent)}.*\n)*", text, re.MULTILINE))
    if not found:
        raise Refused(f"{path} is not in the shape the generator knows")
    end = found[-1].end()
    return text[:end] + addition + text[end:]


def generate(spec: NewService, services: Mapping[str, ServiceDefinition], root: Path) -> list[Path]:
    """Write the service into ``root``; returns the paths written or changed."""
    problems = refusals(spec, services, root)
    if problems:
        raise Refused("; ".join(problems))
    new = render(spec)
    changed = edits(spec, root)
    before = {path: (root / path).read_text() for path in changed}
    written: list[Path] = []
    try:
        for path, text in {**new, **changed}.items():
            target = root / path
            if path in new:
                target.parent.mkdir(parents=True, exist_ok=True)
                written.append(path)
            target.write_text(text)
        if spec.grpc:
            written += _compile_proto(root, spec.name)
        python = [path for path in [*new, *changed] if path.suffix == ".py"]
        _tidy(root, python)
        written += _write_event_documents(root)
    except Exception:
        for path in written:
            (root / path).unlink(missing_ok=True)
        for path, text in before.items():
            (root / path).write_text(text)
        _remove_empty_folders(root, written)
        raise
    return [*new, *changed, *[p for p in written if p not in new]]


def _run(root: Path, *command: str) -> None:
    result = subprocess.run(
        command,
        cwd=root,
        capture_output=True,
        text=True,
        # The checkout's own code, new service included, ahead of any installed copy.
        env={**os.environ, "PYTHONPATH": str(root / "src")},
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")


def _compile_proto(root: Path, name: str) -> list[Path]:
    """The proto's Python modules, as scripts/generate-proto writes them."""
    proto = Path("lkern/proto") / name / "v1" / f"{name}.proto"
    _run(
        root,
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-Iproto",
        "--python_out=src",
        "--grpc_python_out=src",
        "--pyi_out=src",
        str(proto),
    )
    out = Path("src/lkern/proto") / name
    written = [out / "__init__.py", out / "v1" / "__init__.py"]
    for package in written:
        (root / package).touch()
    stem = out / "v1" / name
    return [
        *written,
        stem.with_name(f"{name}_pb2.py"),
        stem.with_name(f"{name}_pb2.pyi"),
        stem.with_name(f"{name}_pb2_grpc.py"),
    ]


def _tidy(root: Path, paths: list[Path]) -> None:
    """Imports sorted and code formatted as ``ruff`` wants, whatever the name's length."""
    ruff = _tool("ruff")
    if ruff is None:
        logger.warning("ruff not found: the new files are left as rendered")
        return
    files = [str(path) for path in paths]
    _run(root, ruff, "check", "--quiet", "--fix", "--select", "I", *files)
    _run(root, ruff, "format", "--quiet", *files)


def _write_event_documents(root: Path) -> list[Path]:
    """docs/events again, now with the new service's events (as ``lkern events schema``);
    returns the documents it added or changed."""
    docs = root / "docs" / "events"
    before = {path: path.read_bytes() for path in docs.glob("*")}
    _run(root, sys.executable, "-m", "lkern", "events", "schema", "--out", str(docs))
    return sorted(
        path.relative_to(root) for path in docs.glob("*") if before.get(path) != path.read_bytes()
    )


def _tool(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def _remove_empty_folders(root: Path, paths: list[Path]) -> None:
    for folder in sorted({p.parent for path in paths for p in path.parents}, reverse=True):
        target = root / folder
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
