"""Property-based fuzzing of each service's API from its own OpenAPI document.

Schemathesis generates valid and invalid requests for every operation against
a real ``lkern serve``; with every check on, none may answer 5xx and
every answer must match what the document promises.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tokens import mint
from tests.system.conftest import ServedService

MAX_EXAMPLES = 60


@pytest.mark.parametrize("service", ["identity", "contacts", "orders"])
def test_api_survives_fuzzing(service: str, request: pytest.FixtureRequest, tmp_path: Path):
    served: ServedService = request.getfixturevalue(f"served_{service}")
    schemathesis = Path(sys.executable).with_name("st")
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
            f"Authorization: Bearer {mint('admin')}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    generated = re.search(r"(\d+) generated", result.stdout)
    assert generated and int(generated.group(1)) > 500, result.stdout[-3000:]
