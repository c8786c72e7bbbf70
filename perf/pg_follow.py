"""Follow mode under a pgbench load: changes per second and lag, transferd against
``pg_recvlogical`` alone (PostgreSQL's own client, writing the stream to /dev/null), same load.

    .venv/bin/python perf/pg_follow.py [--seconds 8] [--rate 300] [--work DIR]

Starts its own cluster (tests/postgres/cluster.py, wal_level=logical), ``pgbench -i -s 1`` with
``pgbench_history`` at REPLICA IDENTITY FULL, one publication of the four tables, and measures each
method in turn on a fresh slot:

1. *throughput*: pgbench writes as fast as it can for ``--seconds`` while the method consumes; the
   time from pgbench's start until the slot's confirmed position reaches the WAL written is taken.
   changes/s = pgbench's transactions x 4 (its TPC-B script updates three rows and inserts one) /
   that time. pgbench, the server and the method share the machine's cores. For transferd,
   "confirmed" means sealed, encrypted, stored in the local store and named by a signed manifest:
   its whole write path.
2. *lag*: pgbench at ``--rate`` transactions/s for ``--seconds`` while the method consumes; every
   0.25 s the source's ``pg_stat_replication.flush_lag`` (the time between a WAL position being
   written and the consumer confirming it) and the unconfirmed bytes of the slot
   (``pg_current_wal_lsn() - confirmed_flush_lsn``) are sampled; medians, 95th percentiles and
   maxima are reported.

pg_recvlogical (``-s 1 -F 1``: a status message and a flush a second) confirms what it has written
(to /dev/null: at once): the floor, the price of decoding and sending alone. Results go to stdout
and perf/results/pg_follow.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.postgres.cluster import Cluster, remove, start_cluster  # noqa: E402
from transferd.core.keys import RecipientIdentity, SenderSecretKey  # noqa: E402
from transferd.send.follow import Follow, FollowOptions  # noqa: E402
from transferd.send.followloop import FollowTuning  # noqa: E402
from transferd.send.pipeline import PipelineConfig  # noqa: E402
from transferd.sources.postgres.source import PgOptions  # noqa: E402
from transferd.stores.local import LocalStore  # noqa: E402

DB = "bench"
PUB = "bench_pub"
TABLES = "pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history"


def pgbench(c: Cluster, seconds: int, rate: int | None) -> subprocess.Popen[str]:
    argv = [c.tool("pgbench"), "-n", "-c", "2", "-j", "1", "-T", str(seconds), "-h", "127.0.0.1",
            "-p", str(c.port), "-U", "postgres", DB]  # fmt: skip
    if rate:
        argv[1:1] = ["-R", str(rate)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def transactions(output: str) -> int:
    m = re.search(r"number of transactions actually processed: (\d+)", output)
    return int(m.group(1)) if m else 0


def lsn(c: Cluster, sql: str) -> int:
    text = c.psql(DB, sql).strip()
    if not text:
        return 0
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def confirmed(c: Cluster, slot: str) -> int:
    q = f"SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '{slot}'"  # noqa: S608
    return lsn(c, q)


_SAMPLE = (
    "SELECT coalesce(extract(epoch FROM r.flush_lag), 0), "
    "pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn) "
    "FROM pg_replication_slots s LEFT JOIN pg_stat_replication r "
    "ON r.pid = s.active_pid WHERE s.slot_name = 'SLOT'"
)


def sample(c: Cluster, slot: str) -> tuple[float | None, int]:
    q = _SAMPLE.replace("SLOT", slot)
    row = c.psql(DB, q).strip()
    if not row:
        return None, 0
    lag, behind = row.split("|")
    return float(lag), int(float(behind))


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 4),
            "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 4),
            "max": round(ordered[-1], 4)}  # fmt: skip


class Recvlogical:
    name = "pg_recvlogical"

    def __init__(self, c: Cluster, work: Path) -> None:
        self.c = c
        self.slot = "perf_recv"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.c.psql(DB, f"SELECT pg_create_logical_replication_slot('{self.slot}', 'pgoutput')")
        self.proc = subprocess.Popen(
            [self.c.tool("pg_recvlogical"), "-h", "127.0.0.1", "-p", str(self.c.port), "-U",
             "postgres", "-d", DB, "-S", self.slot, "--start", "-f", "/dev/null", "-F", "1",
             "-s", "1", "-o", "proto_version=1", "-o", f"publication_names={PUB}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        time.sleep(0.5)
        self.c.psql(DB, f"SELECT pg_drop_replication_slot('{self.slot}')")


class Transferd:
    name = "transferd send --follow"

    def __init__(self, c: Cluster, work: Path) -> None:
        self.c = c
        self.work = work
        self.follow: Follow | None = None
        self.thread: Any = None
        self.slot = ""

    def start(self) -> None:
        import threading

        store = LocalStore(self.work / "store")
        self.follow = Follow(
            spec=self.c.url(DB), pg=PgOptions(jobs=2), store=store, job="perf",
            sender=SenderSecretKey(bytes(range(32))),
            recipients=[RecipientIdentity(bytes(range(1, 33))).public()],
            state_dir=self.work / "state", config=PipelineConfig(workers=2),
            options=FollowOptions(publication=PUB, tuning=FollowTuning()),
        )  # fmt: skip
        self.done = threading.Event()

        def run() -> None:
            asyncio.run(self.follow.run())  # type: ignore[union-attr]
            self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        from transferd.sources.postgres.slot import slot_name

        self.slot = slot_name("perf")

    def stop(self) -> None:
        if self.follow is None:
            return
        self.follow.request_cutover()
        self.done.wait(120)
        shutil.rmtree(self.work / "store", ignore_errors=True)
        shutil.rmtree(self.work / "state", ignore_errors=True)


def wait_slot(c: Cluster, slot: str) -> None:
    for _ in range(600):
        q = f"SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}'"  # noqa: S608
        if c.psql(DB, q).strip():
            return
        time.sleep(0.1)
    raise SystemExit(f"slot {slot} never appeared")


def measure(method: Any, c: Cluster, seconds: int, rate: int) -> dict[str, Any]:
    out: dict[str, Any] = {"method": method.name}
    method.start()
    wait_slot(c, method.slot)
    while isinstance(method, Transferd) and method.follow.status.phase != "follow":  # type: ignore[union-attr]
        time.sleep(0.1)
    # 1. throughput: pgbench as fast as it goes while the method consumes; done when the slot's
    # confirmed position reaches the WAL written
    started = time.monotonic()
    bench = pgbench(c, seconds, None)
    text, _ = bench.communicate()
    written = time.monotonic()
    txns = transactions(text)
    target = lsn(c, "SELECT pg_current_wal_lsn()")
    while confirmed(c, method.slot) < target:
        time.sleep(0.02)
    done = time.monotonic()
    out["throughput"] = {"pgbench_transactions": txns, "changes": 4 * txns,
                         "seconds": round(done - started, 3),
                         "seconds_after_writes": round(done - written, 3),
                         "changes_per_second": round(4 * txns / (done - started))}  # fmt: skip
    # 2. lag at a steady rate
    bench = pgbench(c, seconds, rate)
    lags: list[float] = []
    behind: list[float] = []
    while bench.poll() is None:
        lag, nbytes = sample(c, method.slot)
        if lag is not None:
            lags.append(lag)
            behind.append(nbytes)
        time.sleep(0.25)
    text, _ = bench.communicate()
    out["lag"] = {
        "rate_tps": rate,
        "pgbench_transactions": transactions(text),
        "flush_lag_seconds": summary(lags),
        "unconfirmed_bytes": summary(behind),
    }
    method.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rate", type=int, default=300)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="transferd-pg-follow-"))
    c = start_cluster(logical=True)
    try:
        c.psql("postgres", f"CREATE DATABASE {DB}")
        init = [c.tool("pgbench"), "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", str(c.port),
                "-U", "postgres", DB]  # fmt: skip
        subprocess.run(init, check=True, capture_output=True)
        c.psql(DB, "ALTER TABLE pgbench_history REPLICA IDENTITY FULL")
        c.psql(DB, f"CREATE PUBLICATION {PUB} FOR TABLE {TABLES}")
        results = [
            measure(m(c, work), c, args.seconds, args.rate) for m in (Recvlogical, Transferd)
        ]
    finally:
        remove(c)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    report = {"seconds": args.seconds, "rate_tps": args.rate, "commit": commit,
              "cores": __import__("os").cpu_count(), "methods": results}  # fmt: skip
    for r in results:
        t, lag = r["throughput"], r["lag"]
        print(f"{r['method']:<24} {t['changes_per_second']:,} changes/s ({t['changes']:,} "
              f"changes, caught up {t['seconds_after_writes']:.2f} s after the writes ended); "
              f"at {lag['rate_tps']} tps: flush lag median "
              f"{lag['flush_lag_seconds'].get('median')} s, p95 "
              f"{lag['flush_lag_seconds'].get('p95')} s, unconfirmed median "
              f"{lag['unconfirmed_bytes'].get('median')} B")  # fmt: skip
    out = REPO / "perf" / "results" / "pg_follow.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
