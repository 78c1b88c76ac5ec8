"""Property-based fuzzing of each service's API from its own OpenAPI document.

Schemathesis generates valid and invalid requests for every operation against
a real ``lkern serve``; with every check on, none may answer 5xx and
every answer must match what the document promises. Its stateful phase
follows the document's links (a create -> the operations on what it created)
and must cover some of them; orders' creates name a real customer
(schemathesis_hooks.py), or none would succeed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lkern.identity.definition import DEFAULT_ADMIN_EMAIL
from lkern.services import SERVICES
from tests.support.tokens import mint
from tests.system.conftest import SERVED_ADMIN_PASSWORD, ServedService, serve_identity
from tests.system.schemathesis_hooks import ASSIGNEE_VARIABLE, CUSTOMER_VARIABLE

#: Examples per operation in the fuzzing phase. The coverage phase before it (every
#: boundary and negative case of each operation, deterministically) does not
#: depend on it; with 40 (60 before) the fuzzing phase takes two thirds of the
#: time, for the suite's 15 minutes, and still sends over 500 requests a service.
MAX_EXAMPLES = 40
#: Services whose stateful phase is known to follow at least one link. Issues' does
#: not yet: its creates succeed (a direct create with the fuzz's assignee and
#: customer is a 201), but Schemathesis reports none of its 11 links covered.
FOLLOWS_LINKS = {"identity", "contacts", "orders"}


def admin_token(identity_url: str) -> str:
    response = httpx.post(
        f"{identity_url}/api/v1/auth/token",
        data={"username": DEFAULT_ADMIN_EMAIL, "password": SERVED_ADMIN_PASSWORD},
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


@pytest.fixture
def fuzzed_identity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedService]:
    service = serve_identity(tmp_path_factory.mktemp("fuzzed-identity"))
    yield service
    service.process.stop()


@pytest.mark.slow
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_api_survives_fuzzing(service: str, request: pytest.FixtureRequest, tmp_path: Path):
    # Identity is fuzzed on an instance of its own: the fuzzer, as its admin, changes
    # users (its own password among them) that later tests on the worker log in as.
    fixture = "fuzzed_identity" if service == "identity" else f"served_{service}"
    served: ServedService = request.getfixturevalue(fixture)
    schemathesis = Path(sys.executable).with_name("st")
    # Identity accepts only tokens of users it has: the fuzzer is its bootstrap admin.
    token = admin_token(served.base_url) if service == "identity" else mint("admin")
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(Path(__file__).with_name("schemathesis_hooks.py")),
    }
    if service in ("orders", "issues"):
        env[CUSTOMER_VARIABLE] = a_customer(request.getfixturevalue("served_contacts"), token)
    if service == "issues":
        env[ASSIGNEE_VARIABLE] = an_assignee(request.getfixturevalue("served_identity"))
    result = subprocess.run(
        [
            str(schemathesis),
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{served.base_url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "20261122",
            "--workers",
            "2",
            "--no-color",
            "--header",
            f"Authorization: Bearer {token}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    generated = re.search(r"(\d+) generated", result.stdout)
    assert generated and int(generated.group(1)) > 500, result.stdout[-3000:]
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", result.stdout)
    assert links, result.stdout[-3000:]
    covered, selected = int(links.group(1)), int(links.group(2))
    assert selected >= 4, result.stdout[-3000:]
    if service in FOLLOWS_LINKS:
        assert covered >= 1, result.stdout[-3000:]


def an_assignee(identity: ServedService) -> str:
    """The bootstrap admin: an active user of the served identity."""
    response = httpx.get(
        f"{identity.base_url}/api/v1/users/me",
        headers={"Authorization": f"Bearer {admin_token(identity.base_url)}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def a_customer(contacts: ServedService, token: str) -> str:
    response = httpx.post(
        f"{contacts.base_url}/api/v1/contacts",
        json={"name": "Fuzz Customer", "email": f"fuzz.{uuid.uuid4().hex[:12]}@example.com"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])
