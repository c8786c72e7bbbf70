"""Three agents, three processes, three state directories, one S3 store; one agent is killed.

The store is ministack: agents share only a store that honours If-None-Match (stores/s3probe.py;
a fourth test runs them on rclone serve s3, which does not, and is refused in one line).

The plan gives agent-2 one large job (bravo). agent-2 is killed with SIGKILL once the store holds
some of bravo's packs; agent-1 or agent-3, done with their own jobs, sees bravo's lease unchanged
for a whole lease, takes the job over, adopts the packs agent-2 stored (their headers open with
the job key every agent derives from the copy secret), and finishes it. Then the whole copy is
verified with the sender's public key only, and bravo is restored from S3 byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.copies.agents import MIB, start_agent, stop_all, stored_objects, write_plan
from tests.integration.harness import TRANSFERD, tree
from tests.stores.lockserver import shared_lock_server
from tests.stores.s3server import shared_server

JOBS = {"alpha": "agent-1", "bravo": "agent-2", "charlie": "agent-3", "delta": "agent-3"}


def make_sources(root: Path) -> dict[str, Path]:
    rng = random.Random(9)
    sources = {}
    for job in JOBS:
        src = root / job
        (src / "sub").mkdir(parents=True)
        (src / "readme.txt").write_text(f"job {job}\n" * 100)
        (src / "sub" / "rows.csv").write_text("".join(f"{i};{job};{i * 7}\n" for i in range(20000)))
        sources[job] = src
    for i in range(6):  # bravo: 96 MiB that do not compress, in 1 MiB packs
        (sources["bravo"] / f"scan{i}.bin").write_bytes(rng.randbytes(16 * MIB))
    return sources


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_killed_agents_job_is_finished_by_another_and_the_copy_verifies(tmp_path: Path) -> None:
    server = shared_lock_server()
    procs: dict[str, subprocess.Popen[str]] = {}
    bucket = asyncio.run(server.new_bucket(lock=False))
    sources = make_sources(tmp_path / "sources")
    # renewals every 2 s keep a lease alive even on a loaded machine
    plan, keys = write_plan(tmp_path, server, bucket, sources, JOBS, lease_seconds=6)
    try:
        procs = {a: start_agent(plan, a, tmp_path) for a in ("agent-1", "agent-2", "agent-3")}
        deadline = time.monotonic() + 60
        while stored_objects(server, bucket, "bravo") < 8:
            assert procs["agent-2"].poll() is None, (tmp_path / "agent-2.log").read_text()
            assert time.monotonic() < deadline, "agent-2 stored too few packs of bravo"
            time.sleep(0.05)
        procs["agent-2"].send_signal(signal.SIGKILL)
        procs["agent-2"].communicate()
        killed_at = stored_objects(server, bucket, "bravo")

        results = {}
        for agent in ("agent-1", "agent-3"):
            out, _ = procs[agent].communicate(timeout=180)
            log = (tmp_path / f"{agent}.log").read_text()
            assert procs[agent].returncode == 0, log
            results[agent] = json.loads(out)
    finally:
        stop_all(procs)

    ran = {j["job"]: (agent, j) for agent, r in results.items() for j in r["jobs"]}
    assert set(ran) == {"alpha", "bravo", "charlie", "delta"}
    taker, bravo = ran["bravo"]
    assert bravo["taken_over_from"] == "agent-2"
    assert bravo["packs_adopted"] >= 1, f"{taker} adopted none of the {killed_at} packs"
    assert all(r["copy_complete"] for r in results.values())
    logs = "".join((tmp_path / f"{a}.log").read_text() for a in ("agent-1", "agent-3"))
    assert "taking over job bravo from agent agent-2" in logs

    env = {**os.environ, "TRANSFERD_S3_CONFIG": str(server.config_file(tmp_path / "keys"))}
    verified = subprocess.run(
        [*TRANSFERD, "verify", "--copy", "snds-test", "--store", f"s3://{bucket}/copy",
         "--sender", keys.sender, "--seen-state", str(tmp_path / "seen.json"),
         "--report-json", str(tmp_path / "copy-report.json"),
         "--report-html", str(tmp_path / "copy-report.html")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "PASS, the copy is complete and untouched" in verified.stdout
    report = json.loads((tmp_path / "copy-report.json").read_text())
    assert sorted(report["jobs"]) == sorted(JOBS)
    assert all(j["verdict"] == "pass" for j in report["jobs"].values())
    page = (tmp_path / "copy-report.html").read_text()
    assert '<div class="word">PASS</div>' in page
    assert report["report_sha256"] in page

    status = subprocess.run(
        [*TRANSFERD, "copy", "status", "--plan", str(plan), "--json"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    jobs = {j["job"]: j for j in json.loads(status.stdout)["jobs"]}
    assert all(j["manifest"] == 1 for j in jobs.values())
    assert jobs["bravo"]["lease"]["state"] == "done"
    assert jobs["bravo"]["lease"]["agent"] == taker

    restored = subprocess.run(
        [*TRANSFERD, "restore", "--store", f"s3://{bucket}/copy", "--job", "bravo",
         "--identity", str(keys.owner_key), "--out", str(tmp_path / "bravo-restored"),
         "--sender", keys.sender],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert tree(tmp_path / "bravo-restored") == tree(sources["bravo"])


def test_several_agents_are_refused_a_store_without_conditional_writes(tmp_path: Path) -> None:
    rclone = shared_server()
    bucket = asyncio.run(rclone.new_bucket())
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a\n")
    plan, _ = write_plan(
        tmp_path, rclone, bucket, {"alpha": tmp_path / "src", "bravo": tmp_path / "src"},
        {"alpha": "agent-1", "bravo": "agent-2"}, lease_seconds=6,
    )  # fmt: skip
    proc = start_agent(plan, "agent-1", tmp_path)
    proc.communicate(timeout=60)
    stderr = (tmp_path / "agent-1.log").read_text()
    assert proc.returncode == 4, stderr
    error = json.loads(stderr.strip().splitlines()[-1])
    assert error["error"] == (
        f"s3://{bucket}/copy/ at {rclone.endpoint}: the store does not honour If-None-Match "
        "(conditional writes), which 2 agents sharing it need"
    )
