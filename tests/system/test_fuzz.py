"""Property-based fuzzing of the contacts API from its own OpenAPI document.

Schemathesis generates valid and invalid requests for every operation against
a real ``lkern serve contacts``; with every check on, none may answer 5xx and
every answer must match what the document promises.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.system.conftest import ServedService

MAX_EXAMPLES = 60


def test_contacts_api_survives_fuzzing(served_contacts: ServedService, tmp_path: Path):
    schemathesis = Path(sys.executable).with_name("st")
    result = subprocess.run(
        [
            str(schemathesis),
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{served_contacts.base_url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "20261122",
            "--workers",
            "2",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    generated = re.search(r"(\d+) generated", result.stdout)
    assert generated and int(generated.group(1)) > 500, result.stdout[-3000:]
