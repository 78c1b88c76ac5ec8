"""The benchmark harness itself works: a few seconds of every workload (not a measurement)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.xdist_group("bench")
def test_bench_smoke_run_measures_every_workload(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--profile", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert {row["workload"] for row in results["http"]} == {"W1", "W2", "W3", "W3s", "W1+otlp"}
    for row in results["http"]:
        w1_sides = ("lkern", "floor", "layers", "workers")
        sides = w1_sides if row["workload"] == "W1" else ("lkern", "floor")
        for side in sides:
            assert row[side]["requests"] > 0 and row[side]["errors"] == 0, row
    # W1 again with every span exported over OTLP to the bench's sink.
    [exported] = [row for row in results["http"] if row["workload"] == "W1+otlp"]
    assert exported["exported_bytes"] > 0
    assert results["events"][0]["handled"] == results["events"][0]["emitted"] > 0
    assert results["events_floor"][0]["received"] > 0
    assert results["grpc"]["calls"] > 0 and results["grpc"]["errors"] == 0
    assert results["grpc_floor"]["calls"] > 0 and results["grpc_floor"]["errors"] == 0
    assert (tmp_path / "explain-2000.txt").read_text().count("Execution Time") == 3
    assert [row["workload"] for row in results["issues"]] == ["W6"]
    assert [row["workload"] for row in results["files"]] == ["W7 upload", "W7 download"]
    for row in [*results["issues"], *results["files"]]:
        for side in ("lkern", "floor"):
            assert row[side]["requests"] > 0 and row[side]["errors"] == 0, row
    for side in ("lkern", "floor"):
        memory = results["files_memory"][side]
        assert 0 < memory["before_mib"] <= memory["peak_mib"], memory
    assert (tmp_path / "explain-issues-2000.txt").read_text().count("Execution Time") == 2
    markdown = (tmp_path / "results.md").read_text()
    assert "| W1 |" in markdown and "| W6 |" in markdown and "| upload |" in markdown
    assert "floor + layers" in markdown and "issues replica" in markdown
    assert "served by 2 worker processes" in markdown and "W5 GetContact" in markdown
    # --profile: each measured L-KERN run sampled by py-spy, with its text summary.
    summaries = list((tmp_path / "profiles").glob("*.txt"))
    assert {path.name.split("-")[0] for path in summaries} >= {"W1", "W3", "W6"}
    assert all("own time" in path.read_text() for path in summaries)
