"""A migration as an operator runs it, in processes: ``send --follow`` under pgbench, the sender
SIGKILLed mid-follow and started again, ``send --cutover`` from another terminal, ``restore --to``
into a fresh database, ``verify --against`` the source: equal (README, "Migrating a live
PostgreSQL database")."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.postgres.cluster import Cluster
from tests.postgres.follow import (
    digests,
    env,
    pgbench,
    pgbench_init,
    slots,
    transferd,
    transferd_argv,
)


def manifests(store: Path) -> int:
    d = store / "jobs" / "snds-db" / "manifests"
    return len(list(d.iterdir())) if d.exists() else 0


def wait_for(what: str, ok: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not after {timeout} s")


@pytest.mark.slow
def test_migration_killed_resumed_cut_over_restored_verified(
    logical: Cluster, tmp_path: Path
) -> None:
    pgbench_init(logical, "snds")
    logical.psql("postgres", "CREATE DATABASE snds_new TEMPLATE template0")
    owner = transferd("keygen", "--kind", "recipient", "-o", tmp_path / "owner.key").stdout.strip()
    sender = transferd("keygen", "--kind", "sender", "-o", tmp_path / "sender.key").stdout.strip()
    store, state = tmp_path / "store", tmp_path / "state"
    send = ["send", logical.url("snds"), "--to", store, "--job", "snds-db", "--sender-key",
            tmp_path / "sender.key", "-r", owner, "--state", state, "-j", "2", "--workers", "2",
            "--follow"]  # fmt: skip
    bench = pgbench(logical, "snds", seconds=8)
    first = subprocess.Popen(transferd_argv(*send), env=env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for("the snapshot's manifest and a follow manifest", lambda: manifests(store) >= 3)
        first.send_signal(signal.SIGKILL)  # mid-follow, pgbench still writing
        first.wait(timeout=30)
        again = subprocess.Popen(transferd_argv(*send), env=env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)  # fmt: skip
        bench.wait(timeout=60)  # the application stops writing
        cut = transferd(*send[:-1], "--cutover")
        assert cut.returncode == 0, cut.stderr
        lines = cut.stdout.strip().splitlines()
        assert len(lines) == 1, cut.stdout
        assert lines[0].startswith("copy complete up to LSN "), cut.stdout
        out, err = again.communicate(timeout=60)
        assert again.returncode == 0, err
        assert out.strip() == lines[0]
    finally:
        for proc in (first, bench):
            if proc.poll() is None:
                proc.kill()
    assert slots(logical, "snds") == []
    restored = transferd("restore", "--store", store, "--job", "snds-db", "--identity",
                         tmp_path / "owner.key", "--sender", sender, "--to",
                         logical.url("snds_new"), "-j", "2")  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert "change segments, up to LSN" in restored.stdout
    assert digests(logical, "snds_new") == digests(logical, "snds")
    check = transferd("verify", "--store", store, "--job", "snds-db", "--sender", sender,
                      "--identity", tmp_path / "owner.key",
                      "--against", logical.url("snds"))  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    keyless = transferd("verify", "--store", store, "--job", "snds-db", "--sender", sender)
    assert keyless.returncode == 0, keyless.stdout + keyless.stderr
