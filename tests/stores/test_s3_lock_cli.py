"""The Object Lock flags as a user runs them: send a directory to ministack retained for 30
days in compliance mode, verify it with the retention shown, fail a verify that asks for more,
extend the lock, and have it pass; and the refusals where a lock cannot hold."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.harness import TRANSFERD, make_keys
from tests.stores.lockserver import shared_lock_server
from tests.stores.s3server import shared_server


def run(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TRANSFERD, *map(str, args)], capture_output=True, text=True, env=env, timeout=120,
        check=False,
    )  # fmt: skip


@pytest.mark.slow  # seven runs of the real command, about two seconds each
def test_a_copy_stored_locked_is_verified_with_its_retention_and_extended(tmp_path: Path) -> None:
    server = shared_lock_server()
    bucket = asyncio.run(server.new_bucket())
    env = {**os.environ, "TRANSFERD_S3_CONFIG": str(server.config_file(tmp_path))}
    keys = make_keys(tmp_path / "keys")
    source = tmp_path / "claims"
    (source / "2026").mkdir(parents=True)
    (source / "2026" / "claims.csv").write_text("id;acte\n" + "1;consultation\n" * 5000)
    (source / "readme.txt").write_text("SNDS extract\n")
    to = f"s3://{bucket}/v1"

    sent = run(env, "send", source, "--to", to, "--job", "claims", "--sender-key",
               keys.sender_key, "-r", keys.owner, "--state", tmp_path / "state",
               "--object-lock", "30", "--lock-mode", "compliance", "--json")  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["object_lock"] == {"days": 30, "mode": "COMPLIANCE"}

    verify = ["verify", "--store", to, "--job", "claims", "--sender", keys.sender,
              "--seen-state", tmp_path / "seen.json"]  # fmt: skip
    shown = run(env, *verify, "--object-lock", "30", "--lock-mode", "compliance")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "PASS" in shown.stdout
    assert "retention (compliance for 30 days asked):" in shown.stdout
    assert "    compliance: " in shown.stdout

    more = run(env, *verify, "--object-lock", "40", "--json")
    assert more.returncode == 25, more.stderr
    error = json.loads(more.stderr.strip().splitlines()[-1])
    assert error["error"].startswith("retention shorter than asked (governance for 40 days)")
    retention = json.loads(more.stdout)["retention"]
    assert retention["short"] == len(retention["objects"]) > 3
    assert {o["mode"] for o in retention["objects"]} == {"COMPLIANCE"}

    extended = run(env, "copy", "extend-lock", "--store", to, "--job", "claims",
                   "--object-lock", "40", "--json")  # fmt: skip
    assert extended.returncode == 0, extended.stderr
    done = json.loads(extended.stdout)
    assert (done["extended"], done["refused"]) == (len(retention["objects"]), [])
    again = run(env, *verify, "--object-lock", "40", "--lock-mode", "compliance")
    assert again.returncode == 0, again.stdout + again.stderr
    kept = run(env, "copy", "extend-lock", "--store", to, "--job", "claims",
               "--object-lock", "10", "--json")  # fmt: skip
    assert json.loads(kept.stdout)["kept"] == len(retention["objects"])  # never shortened


def test_a_lock_is_refused_on_a_store_that_cannot_hold_it(tmp_path: Path) -> None:
    rclone = shared_server()
    bucket = asyncio.run(rclone.new_bucket())
    env = {**os.environ, "TRANSFERD_S3_CONFIG": str(rclone.config_file(tmp_path))}
    keys = make_keys(tmp_path / "keys")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a\n")
    common = ["--job", "a", "--sender-key", keys.sender_key, "-r", keys.owner,
              "--state", tmp_path / "state", "--object-lock", "7"]  # fmt: skip
    echoed = run(env, "send", tmp_path / "src", "--to", f"s3://{bucket}/v1", *common)
    assert echoed.returncode == 4
    assert f"Object Lock is not enabled on bucket {bucket}" in echoed.stderr
    local = run(env, "send", tmp_path / "src", "--to", tmp_path / "store", *common)
    assert local.returncode == 2
    assert "--object-lock needs an s3:// store" in local.stderr
