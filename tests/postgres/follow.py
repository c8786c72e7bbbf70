"""Helpers of the follow tests: a logical cluster, pgbench, table digests, the transferd CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.postgres.cluster import Cluster

REPO = Path(__file__).resolve().parents[2]
TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")


def transferd_argv(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "transferd", *map(str, args)]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def transferd(*args: str | Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(transferd_argv(*args), capture_output=True, text=True,
                          timeout=timeout, env=env(), check=False)  # fmt: skip


def pgbench_init(cluster: Cluster, db: str) -> None:
    cluster.psql("postgres", f"CREATE DATABASE {db}")
    subprocess.run(
        [cluster.tool("pgbench"), "-i", "-q", "-s", "1", "-h", "127.0.0.1",
         "-p", str(cluster.port), "-U", "postgres", db],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    # pgbench_history has no primary key: the follow's pre-flight asks for FULL identity
    cluster.psql(db, "ALTER TABLE pgbench_history REPLICA IDENTITY FULL")


def pgbench(cluster: Cluster, db: str, seconds: int, rate: int = 300) -> subprocess.Popen[bytes]:
    """TPC-B-like writes on two clients, at most ``rate`` transactions a second."""
    return subprocess.Popen(
        [cluster.tool("pgbench"), "-n", "-c", "2", "-T", str(seconds), "-R", str(rate),
         "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", db],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def digests(
    cluster: Cluster, db: str, tables: Iterator[str] | tuple[str, ...] = TABLES
) -> dict[str, str]:
    """Each table's row count and an md5 of its rows in a fixed order."""
    out = {}
    for t in tables:
        rows = "coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '')"
        q = f"SELECT count(*) || ' ' || {rows} FROM {t} x"  # noqa: S608
        out[t] = cluster.psql(db, q).strip()
    return out


def slots(cluster: Cluster, db: str) -> list[str]:
    return cluster.psql(db, "SELECT slot_name FROM pg_replication_slots").split()
