"""Restoring a PostgreSQL copy whose largest table is large: one COPY per table, or several.

    .venv/bin/python perf/pg_restore.py [--scale 80] [--runs 4] [--jobs 4] [--work DIR]

Starts its own cluster (tests/postgres/cluster.py), fills it as perf/pg_resume.py does (pgbench at
SCALE, pgbench_accounts rewritten with random filler: scale 80 is 8 million rows, about 780 MB of
COPY text in one table), sends it to a local store, then restores it with ``transferd restore
--to`` into fresh databases, alternately with one COPY per table (the default) and with
``--split-tables-larger-than 64M`` (that table loaded by up to ``--jobs`` COPYs at once), RUNS
times each, and reports the median wall time and rate of each (the two alternate which goes first).
The target cluster is the same machine: on 2 cores the restoring process, the COPY backends and the
server's WAL writer share them, so the figure says little about a many-core target.
Results go to stdout and perf/results/pg_restore-<scale>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "perf"))

from pg_resume import DB, TRANSFERD, fill, fresh_work, run, send_cmd, tree_bytes  # noqa: E402

from tests.postgres.cluster import Cluster, remove, start_cluster  # noqa: E402


def restore(cluster: Cluster, work: Path, keys: dict[str, str], target: str, *extra: str) -> float:
    cluster.psql("postgres", f"CREATE DATABASE {target} TEMPLATE template0")
    cmd = [*TRANSFERD, "restore", "--store", str(work / "store"), "--job", "db",
           "--identity", keys["owner_key"], "--to", cluster.url(target), "--quiet", "--json",
           "-j", keys["jobs"], *extra]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"restore failed ({proc.returncode}): {proc.stderr}")
    cluster.psql("postgres", f"DROP DATABASE {target}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=80)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "transferd-pg-restore"
    )
    args = parser.parse_args()
    keys = fresh_work(args.work) | {"jobs": str(args.jobs)}
    cluster = start_cluster()
    walls: dict[str, list[float]] = {"one COPY per table": [], "several COPYs per large table": []}
    try:
        cluster.psql("postgres", f"CREATE DATABASE {DB}")
        fill(cluster, args.scale)
        rows_bytes = int(
            cluster.psql(DB, "SELECT sum(length(t::text) + 1) FROM pgbench_accounts t")
        )
        _, sent = run(send_cmd(cluster, args.work / "store", args.work / "state", "db", keys))
        for n in range(args.runs):  # alternately first: neither gains from the other's caches
            split = ("--split-tables-larger-than", "64M")
            order = [("one COPY per table", ()), ("several COPYs per large table", split)]
            for label, extra in order[:: 1 if n % 2 == 0 else -1]:
                walls[label].append(restore(cluster, args.work, keys, f"db{n}{len(extra)}", *extra))
    finally:
        remove(cluster)
    result: dict[str, Any] = {
        "scale": args.scale,
        "jobs": args.jobs,
        "bytes_read": sent["bytes_read"],
        "largest_table_text_bytes": rows_bytes,
        "stored_bytes": tree_bytes(args.work / "store"),
        "cores": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip(),
    }  # fmt: skip
    for label, w in walls.items():
        median = statistics.median(w)
        result[label] = {"walls_s": [round(x, 2) for x in w], "median_s": round(median, 2),
                         "mb_per_s": round(sent["bytes_read"] / median / 1e6, 1)}  # fmt: skip
    text = json.dumps(result, indent=2)
    print(text)
    out = REPO / "perf" / "results" / f"pg_restore-{args.scale}.json"
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
