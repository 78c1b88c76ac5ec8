"""The templates of ``lkern new-service`` and what it refuses, without writing a checkout
(tests/system/test_new_service.py generates one and runs it)."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lkern.generator.scaffold import (
    CHECKOUT,
    NewService,
    Refused,
    edits,
    generate,
    refusals,
    render,
)
from lkern.services import SERVICES

# After "platform" in the alphabet, so the templates' import order is already ruff's;
# the generator sorts other names' imports when it writes them.
NAME = "widgets"
OPTIONS = list(itertools.product([None, "WID"], [False, True], [False, True]))


def spec(prefix: str | None = "WID", files: bool = True, grpc: bool = True) -> NewService:
    return NewService(
        NAME, "lkms190", 8190, 5190 if grpc else None, prefix=prefix, files=files, grpc=grpc
    )


def ruff(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).parent / "ruff"
    return subprocess.run(
        [str(command) if command.exists() else "ruff", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


@pytest.mark.parametrize(("prefix", "files", "grpc"), OPTIONS)
def test_every_combination_renders_code_ruff_accepts_as_it_is(
    tmp_path: Path, prefix: str | None, files: bool, grpc: bool
):
    rendered = render(spec(prefix, files, grpc))
    # The checkout's configuration and code: ruff tells first-party imports by the
    # modules it finds.
    shutil.copy(CHECKOUT / "pyproject.toml", tmp_path)
    for tree in ("src", "tests"):
        shutil.copytree(CHECKOUT / tree, tmp_path / tree, ignore=shutil.ignore_patterns("*.pyc"))
    if grpc:  # what protoc makes of the proto
        stubs = tmp_path / "src" / "lkern" / "proto" / NAME / "v1"
        stubs.mkdir(parents=True)
        for module in ("__init__", f"{NAME}_pb2", f"{NAME}_pb2_grpc"):
            (stubs / f"{module}.py").touch()
    for path, text in rendered.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
        if path.suffix == ".py":
            compile(text, str(path), "exec")
        elif path.suffix == ".yaml":
            assert all(yaml.safe_load_all(text))
    python = [str(tmp_path / path) for path in rendered if path.suffix == ".py"]
    checked = ruff(tmp_path, "check", "--no-cache", *python)
    assert checked.returncode == 0, checked.stdout
    formatted = ruff(tmp_path, "format", "--no-cache", "--check", "--diff", *python)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    assert (Path("src/lkern") / NAME / "grpc.py" in rendered) is grpc
    package = "".join(
        text for path, text in rendered.items() if path.parts[:3] == ("src", "lkern", NAME)
    )
    assert ("next_code" in package) is bool(prefix)
    assert ("add_file_routes" in package) is files


def test_the_first_migration_starts_the_branch_on_the_platform_branches_it_uses():
    coded = render(spec())[Path("src/lkern") / NAME / "migrations" / f"0001_{NAME}.py"]
    assert f'branch_labels: str | Sequence[str] | None = ("{NAME}",)' in coded
    assert "down_revision: str | None = None" in coded
    for branch in (
        "platform_outbox",
        "platform_deletion_audits",
        "platform_code_counters",
        "platform_inbox",  # it consumes the platform's revocations of users (§9)
        "platform_revocations",
    ):
        assert f'"{branch}"' in coded
    plain = render(spec(prefix=None))[Path("src/lkern") / NAME / "migrations" / f"0001_{NAME}.py"]
    assert "platform_code_counters" not in plain and '"code"' not in plain


def test_the_resource_is_the_singular_of_the_name():
    nouns = {
        name: NewService(name, "lkms190", 8190).noun
        for name in ["widgets", "categories", "addresses", "boxes", "fish", "glass"]
    }
    assert nouns == {
        "widgets": "widget",
        "categories": "category",
        "addresses": "address",
        "boxes": "box",
        "fish": "fish",
        "glass": "glass",
    }


def test_a_taken_name_code_and_ports_are_refused():
    contacts = SERVICES["contacts"]
    taken = NewService("contacts", contacts.code, contacts.rest_port, contacts.grpc_port, grpc=True)
    assert refusals(taken, SERVICES, CHECKOUT) == [
        "the name 'contacts' is taken",
        "the code lkms101 is taken by contacts",
        "the port 8101 is taken by contacts",
        "the port 5101 is taken by contacts",
    ]
    assert refusals(spec(), SERVICES, CHECKOUT) == []


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (NewService("Gadget_s", "lkms190", 8190), "must be 3-30 lower-case letters"),
        (NewService("platform", "lkms190", 8190), "the name 'platform' is taken"),
        (NewService("gadgets", "ms190", 8190), "must look like lkms150"),
        (NewService("gadgets", "lkms190", 80), "between 1024 and 65535"),
        (NewService("gadgets", "lkms190", 8190, prefix="gadget"), "2-4 capital letters"),
        (NewService("gadgets", "lkms190", 8190, grpc=True), "--grpc needs --grpc-port"),
        (NewService("gadgets", "lkms190", 8190, 5190), "--grpc-port is for a service"),
        (NewService("gadgets", "lkms190", 8190, 8190, grpc=True), "ports must differ"),
        (NewService("gadgets", "lkms190", 8190, description='Say "hi"'), "one line"),
    ],
)
def test_malformed_requests_are_refused(wrong: NewService, message: str):
    assert any(message in problem for problem in refusals(wrong, SERVICES, CHECKOUT))


def test_a_refusal_writes_nothing(tmp_path: Path):
    for path in edits(spec(), CHECKOUT):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CHECKOUT / path, tmp_path / path)
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    with pytest.raises(Refused, match="the port 8101 is taken by contacts"):
        generate(NewService("gadgets", "lkms190", 8101), SERVICES, tmp_path)
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before


def test_the_registrations_name_the_new_service_everywhere_a_service_is_listed():
    changed = edits(spec(), CHECKOUT)
    services = changed[Path("src/lkern/services.py")]
    assert f"from lkern.{NAME}.definition import {NAME.upper()}" in services
    assert f"INVENTORY, {NAME.upper()})" in services
    compose = yaml.safe_load(changed[Path("compose.yaml")])["services"]
    assert compose[NAME]["command"] == ["serve", NAME]
    assert compose[NAME]["ports"] == ["8190:8190"]
    assert compose[f"migrate-{NAME}"]["command"] == ["migrate", NAME, "upgrade"]
    assert set(compose[NAME]["depends_on"]) == {f"migrate-{NAME}", "kafka", "minio", "identity"}
    assert f"CREATE DATABASE {NAME};" in changed[Path("deploy/compose/postgres-databases.sql")]
    assert f'    "{NAME}": 8190,\n}}' in changed[Path("deploy/docker/healthcheck.py")]
    assert f'    "{NAME}": (8190, 5190),\n}}' in changed[Path("tests/deploy/manifests.py")]
    kustomization = yaml.safe_load(changed[Path("deploy/k8s/kustomization.yaml")])
    assert kustomization["resources"][-1] == f"{NAME}.yaml"
    [exposed] = re.findall(r"^EXPOSE .*$", (CHECKOUT / "Dockerfile").read_text(), re.MULTILINE)
    assert f"{exposed} 8190 5190\n" in changed[Path("Dockerfile")]
    assert changed[Path("Dockerfile")].count(" 8190 5190\n") == 1
    assert f"async def {NAME}_service(fleet: Fleet)" in changed[Path("tests/conftest.py")]


def test_the_package_says_what_it_keeps_as_the_others_do():
    package = Path("src/lkern") / NAME / "__init__.py"
    assert render(spec())[package] == '"""Widgets (lkms190): the widgets of the business."""\n'
    described = NewService(NAME, "lkms190", 8190, description="NATO rooms booked by staff.")
    assert render(described)[package] == '"""Widgets (lkms190): NATO rooms booked by staff."""\n'
