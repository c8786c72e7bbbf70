"""The PostgreSQL copy as an operator runs it: transferd send, restore and verify, in processes.

The main test copies the database while pgbench keeps writing to it. The test exports the
snapshot itself and gives it with --snapshot, so it can measure what that snapshot holds (the
expected tables, sequences and schema) while the copy runs and pgbench goes on.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.postgres.cluster import Cluster
from tests.postgres.dbstate import measure

REPO = Path(__file__).resolve().parents[2]


def transferd(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "transferd", *map(str, args)],
        capture_output=True, text=True, timeout=120, env=full_env, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("keys")
    owner = transferd("keygen", "--kind", "recipient", "-o", d / "owner.key").stdout.strip()
    sender = transferd("keygen", "--kind", "sender", "-o", d / "sender.key").stdout.strip()
    return {"owner": owner, "owner_key": str(d / "owner.key"), "sender_key": str(d / "sender.key"),
            "sender": sender}  # fmt: skip


@pytest.fixture
def pgbench(cluster: Cluster, source_db: str) -> Iterator[subprocess.Popen[bytes]]:
    """pgbench's TPC-B-like writes on two clients until the test ends."""
    proc = subprocess.Popen(
        [cluster.tool("pgbench"), "-n", "-c", "2", "-T", "300", "-h", "127.0.0.1",
         "-p", str(cluster.port), "-U", "postgres", source_db],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    yield proc
    proc.terminate()
    proc.wait(timeout=30)


def history_rows(cluster: Cluster, db: str) -> int:
    return int(cluster.psql(db, "SELECT count(*) FROM pgbench_history"))


def send_args(keys: dict[str, str], url: str, store: Path, state: Path, *extra: str) -> list[str]:
    """A send's arguments; ``--json`` among ``extra`` makes stdout the JSON summary."""
    return ["send", url, "--to", str(store), "--job", "db", "--sender-key", keys["sender_key"],
            "-r", keys["owner"], "--state", str(state), "--workers", "2", "-j", "2",
            *extra]  # fmt: skip


def test_copy_while_pgbench_writes_then_restore_and_verify(
    cluster: Cluster,
    source_db: str,
    empty_db: str,
    keys: dict[str, str],
    pgbench: subprocess.Popen[bytes],
    tmp_path: Path,
) -> None:
    deadline = time.monotonic() + 30
    while history_rows(cluster, source_db) == 0:  # pgbench is writing
        assert time.monotonic() < deadline, "pgbench wrote nothing"
        time.sleep(0.05)

    async def run() -> None:
        holder = await asyncpg.connect(cluster.url(source_db))
        await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        snapshot = await holder.fetchval("SELECT pg_export_snapshot()")
        expected = await measure(cluster, source_db, snapshot)
        before = history_rows(cluster, source_db)

        sent = await asyncio.to_thread(
            transferd,
            *send_args(keys, cluster.url(source_db), tmp_path / "store", tmp_path / "state",
                       "--snapshot", snapshot, "--json"),
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        assert f"snapshot {snapshot}" in sent.stderr
        summary = json.loads(sent.stdout.splitlines()[-1])
        assert summary["complete"]
        assert history_rows(cluster, source_db) > before  # pgbench went on writing meanwhile
        await holder.close()

        restored = await asyncio.to_thread(
            transferd, "restore", "--store", tmp_path / "store", "--job", "db", "--identity",
            keys["owner_key"], "--to", cluster.url(empty_db), "--json",
        )  # fmt: skip
        assert restored.returncode == 0, restored.stderr
        assert json.loads(restored.stdout.splitlines()[-1])["snapshot"] == snapshot

        got = await measure(cluster, empty_db)
        assert got.schema == expected.schema
        assert got.tables == expected.tables
        assert got.large_objects == expected.large_objects
        # sequences are not transactional (pg_dump reads them the same way): pgbench's tables
        # have none, and the others were not written meanwhile
        assert got.sequences == expected.sequences

        verify = ["verify", "--store", str(tmp_path / "store"), "--job", "db", "--sender",
                  keys["sender"], "--identity", keys["owner_key"], "--seen-state",
                  str(tmp_path / "seen"), "--json", "--against"]  # fmt: skip
        same = await asyncio.to_thread(transferd, *verify, cluster.url(empty_db))
        assert same.returncode == 0, same.stdout + same.stderr
        report = json.loads(same.stdout.splitlines()[-1])
        assert report["counts"]["source_tables"] == len(expected.tables)
        assert report["source"]["snapshot"] == snapshot

        moved_on = await asyncio.to_thread(transferd, *verify, cluster.url(source_db))
        assert moved_on.returncode == 24, moved_on.stderr  # pgbench wrote after the snapshot
        failures = json.loads(moved_on.stdout.splitlines()[-1])["failures"]
        differing = {f["message"].split(" ")[1] for f in failures if f["kind"] == "differs"}
        assert "public.pgbench_history" in differing
        assert not any("awkward" in f["message"] for f in failures)

    asyncio.run(run())


def test_wrong_password_is_a_clear_error(
    cluster: Cluster, source_db: str, keys: dict[str, str], tmp_path: Path
) -> None:
    cluster.psql(source_db, "CREATE ROLE guarded LOGIN PASSWORD 'right'")
    try:
        url = cluster.url(source_db, "guarded", "wrong")
        proc = transferd(*send_args(keys, url, tmp_path / "store", tmp_path / "state"))
        assert proc.returncode == 8  # the source refused: nothing published
        assert "error: password authentication failed for user guarded at 127.0.0.1:" in (
            proc.stderr
        )
        assert "hint: give the password with --password-file FILE" in proc.stderr
        assert "wrong" not in proc.stderr + proc.stdout
        # the same job then runs with the right password from a file, nothing else changed
        (tmp_path / "pw").write_text("right\n")
        (tmp_path / "pw").chmod(0o600)
        url = cluster.url(source_db, "guarded")
        proc = transferd(
            *send_args(keys, url, tmp_path / "store", tmp_path / "state", "--password-file",
                       str(tmp_path / "pw"), "-t", "pgbench_branches"),
        )  # fmt: skip
        assert proc.returncode == 3, proc.stderr  # guarded may not read pgbench_branches
        assert "permission denied for table pgbench_branches" in proc.stderr
        cluster.psql(source_db, "GRANT SELECT ON pgbench_branches TO guarded")
        proc = transferd(
            *send_args(keys, url, tmp_path / "store", tmp_path / "state", "--password-file",
                       str(tmp_path / "pw"), "-t", "pgbench_branches", "--json"),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout.splitlines()[-1])["complete"]
    finally:
        cluster.psql(source_db, "DROP OWNED BY guarded; DROP ROLE guarded")


def test_unreachable_server_is_a_clear_error(keys: dict[str, str], tmp_path: Path) -> None:
    from tests.postgres.cluster import free_port

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    proc = transferd(*send_args(keys, url, tmp_path / "store", tmp_path / "state"))
    assert proc.returncode == 8  # not 3, which says a manifest was published
    assert "error: cannot connect to PostgreSQL at 127.0.0.1:" in proc.stderr
    assert "Traceback" not in proc.stderr
