"""The generated gRPC code is what scripts/generate-proto makes of proto/ today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_generated_code_is_current(tmp_path: Path):
    subprocess.run(
        [str(ROOT / "scripts" / "generate-proto"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
    )
    generated = {
        p.relative_to(tmp_path): p.read_text()
        for p in (tmp_path / "lkern" / "proto").rglob("*")
        if p.suffix in {".py", ".pyi"} and p.name != "__init__.py"
    }
    committed = {
        p.relative_to(ROOT / "src"): p.read_text()
        for p in (ROOT / "src" / "lkern" / "proto").rglob("*")
        if p.suffix in {".py", ".pyi"} and p.name != "__init__.py"
    }
    assert generated.keys() == committed.keys()
    assert generated == committed, "run scripts/generate-proto and commit the result"
