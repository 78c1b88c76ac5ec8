"""``lkern inventory import``, the command as a user runs it, on the embedded SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from lkern.cli import main

GOOD = "description,category,tags,attributes\n" + "".join(
    f"part {n},bulk,a;b,n={n}\n" for n in range(500)
)


def _parts(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "inventory" / "inventory.db") as db:
        return int(db.execute("SELECT count(*) FROM parts").fetchone()[0])


def test_import_checks_every_row_then_writes_all_with_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("LKERN_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    bad = tmp_path / "bad.csv"
    bad.write_text("description,category,box_no,loc_no,quantity\nok,x,,,\n,x,,,\nz,y,7,1,5\n")
    refused = runner.invoke(main, ["inventory", "import", str(bad)])
    assert refused.exit_code == 1, refused.output
    assert "row 3 description:" in refused.stderr
    assert "row 4 loc_no: box 7 does not exist" in refused.stderr
    assert "nothing was written" in refused.stderr
    assert _parts(tmp_path) == 0

    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    dry = runner.invoke(main, ["inventory", "import", str(good), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "500 rows are valid" in dry.stdout and _parts(tmp_path) == 0

    done = runner.invoke(main, ["inventory", "import", str(good)])
    assert done.exit_code == 0, done.output
    assert "500 parts created" in done.stdout
    assert "writing parts" in done.stderr  # the progress bar
    assert _parts(tmp_path) == 500
