"""An immutable copy stored by agents: ``object_lock_days`` in the plan's ``[s3]`` retains every
object and manifest the agents store, as ``send --object-lock`` does, and verify shows it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.copies.agents import start_agent, stop_all, write_plan
from tests.integration.harness import TRANSFERD
from tests.stores.lockserver import shared_lock_server


@pytest.mark.slow  # an agent and two verifies, real processes on ministack
def test_an_agent_stores_the_copy_retained_as_its_plan_says(tmp_path: Path) -> None:
    server = shared_lock_server()
    bucket = asyncio.run(server.new_bucket())
    source = tmp_path / "src" / "claims"
    source.mkdir(parents=True)
    (source / "claims.csv").write_text("id;acte\n" + "1;consultation\n" * 5000)
    plan, keys = write_plan(
        tmp_path, server, bucket, {"claims": source}, {"claims": "agent-1"}, lease_seconds=30,
        s3_extra='object_lock_days = 30\nlock_mode = "compliance"',
    )  # fmt: skip
    procs = {"agent-1": start_agent(plan, "agent-1", tmp_path)}
    try:
        out, _ = procs["agent-1"].communicate(timeout=120)
        assert procs["agent-1"].returncode == 0, (tmp_path / "agent-1.log").read_text()
    finally:
        stop_all(procs)
    assert json.loads(out)["copy_complete"]

    env = {**os.environ, "TRANSFERD_S3_CONFIG": str(server.config_file(tmp_path / "keys"))}

    def verify(*lock: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*TRANSFERD, "verify", "--store", f"s3://{bucket}/copy", "--job", "claims",
             "--sender", keys.sender, *lock],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip

    shown = verify("--object-lock", "30", "--lock-mode", "compliance")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "retention (compliance for 30 days asked):" in shown.stdout
    assert verify("--object-lock", "31").returncode == 25  # retained 30 days, not 31
