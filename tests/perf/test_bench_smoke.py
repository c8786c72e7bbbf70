"""perf/bench runs end to end on a tiny dataset: every stage of it, no peers, no timing asserted.

A benchmark that only runs by hand breaks unnoticed; this keeps it working. It times nothing
that matters (16 MiB, one run), so it asserts only that each part produced its figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "perf" / "bench.py"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_bench_runs_every_stage_on_16_mib(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--size", "16M", "--runs", "1", "--no-peers", "--no-chart",
         "--no-small", "--out", str(out), "--profiles", str(tmp_path / "profiles")],
        env={**os.environ, "TRANSFERD_PERF_CACHE": str(tmp_path / "cache")},
        capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results,) = out.glob("*-bench.json")
    report = json.loads(results.read_text())
    for key in ("transferd_e2e", "transferd_inprocess"):
        assert report["methods"][key]["mb_s"] > 0
        assert 0.3 < report["methods"][key]["ratio"] < 0.8  # CSV compresses, scans do not
    e2e = report["methods"]["transferd_e2e"]["procs"]
    assert set(e2e) == {"sender", "receiver"}
    assert report["limits"]["zstd"]["mb_s_1"] > 0
    assert report["resume"]["stored_object_bytes"] > 0
    assert "targets (issue 17):" in proc.stdout
    assert {p.suffix for p in (tmp_path / "profiles").iterdir()} == {".folded", ".txt"}


def test_the_key_bench_gives_every_figure_for_both_types() -> None:
    bench = Path(__file__).resolve().parents[2] / "perf" / "bench_keys.py"
    proc = subprocess.run(
        [sys.executable, str(bench), "--calls", "2", "--rounds", "1", "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    types = json.loads(proc.stdout)["types"]
    assert set(types) == {"x25519", "mlkem768x25519"}
    assert types["mlkem768x25519"]["stanza_json_bytes"] == 3580
    assert types["x25519"]["stanza_json_bytes"] == 224
    assert all(v > 0 for t in types.values() for v in t.values())
