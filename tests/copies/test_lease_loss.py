"""A lease lost while paused: agent-1 is stopped (SIGSTOP) in the middle of its job for longer
than a lease, agent-2 takes the job over, adopts what agent-1 stored and finishes the copy; when
agent-1 is let go on (SIGCONT) it finds agent-2's lease of a later epoch, stops with exit 26 and
a message saying so, and stores nothing more: the copy verifies (protocol/SPEC.md 12.2)."""

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

from tests.copies.agents import start_agent, stop_all, stored_objects, write_plan
from tests.integration.harness import TRANSFERD
from tests.stores.lockserver import shared_lock_server

MIB = 1024 * 1024


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_an_agent_paused_past_its_lease_is_refused_when_it_wakes(tmp_path: Path) -> None:
    server = shared_lock_server()
    bucket = asyncio.run(server.new_bucket(lock=False))
    slow, quick = tmp_path / "src" / "slow", tmp_path / "src" / "quick"
    slow.mkdir(parents=True)
    quick.mkdir(parents=True)
    rng = random.Random(18)
    for i in range(3):  # 24 MiB that do not compress, in 1 MiB packs: seconds to send
        (slow / f"scan{i}.bin").write_bytes(rng.randbytes(8 * MIB))
    (quick / "readme.txt").write_text("a small job\n")
    plan, keys = write_plan(
        tmp_path, server, bucket, {"slow": slow, "quick": quick},
        {"slow": "agent-1", "quick": "agent-2"}, lease_seconds=4,
    )  # fmt: skip
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        procs = {a: start_agent(plan, a, tmp_path) for a in ("agent-1", "agent-2")}
        deadline = time.monotonic() + 60
        while stored_objects(server, bucket, "slow") < 4:
            assert procs["agent-1"].poll() is None, (tmp_path / "agent-1.log").read_text()
            assert time.monotonic() < deadline, "agent-1 stored too few packs of slow"
            time.sleep(0.05)
        procs["agent-1"].send_signal(signal.SIGSTOP)

        out, _ = procs["agent-2"].communicate(timeout=180)
        assert procs["agent-2"].returncode == 0, (tmp_path / "agent-2.log").read_text()
        taker = json.loads(out)
        assert taker["copy_complete"]
        slow_run = next(j for j in taker["jobs"] if j["job"] == "slow")
        assert slow_run["taken_over_from"] == "agent-1"
        stored = stored_objects(server, bucket, "slow")

        procs["agent-1"].send_signal(signal.SIGCONT)
        procs["agent-1"].communicate(timeout=60)
        log = (tmp_path / "agent-1.log").read_text()
        assert procs["agent-1"].returncode == 26, log
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
        stop_all(procs)

    error = json.loads(log.strip().splitlines()[-1])
    assert error["exit_code"] == 26
    assert error["error"].startswith("job slow: agent agent-2 took over at epoch ")
    assert error["error"].endswith(
        "while this agent (epoch 1) was paused or cut off; stopping (nothing it wrote after "
        "that counts)"
    )
    assert stored_objects(server, bucket, "slow") == stored  # it stored nothing more

    env = {**os.environ, "TRANSFERD_S3_CONFIG": str(server.config_file(tmp_path / "keys"))}
    verified = subprocess.run(
        [*TRANSFERD, "verify", "--copy", "snds-test", "--store", f"s3://{bucket}/copy",
         "--sender", keys.sender, "--seen-state", str(tmp_path / "seen.json")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "PASS, the copy is complete and untouched" in verified.stdout
