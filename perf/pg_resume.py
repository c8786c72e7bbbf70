"""A PostgreSQL send killed at half, then run again: how much is uploaded twice?

    .venv/bin/python perf/pg_resume.py [--scale 70] [--work DIR] [--keep]

Starts its own cluster (tests/postgres/cluster.py), fills it with ``pgbench -i -s SCALE``
(scale 70: about 1 GiB on disk) whose ``filler`` column is rewritten with random hex so the data
is not 100:1 compressible as pgbench's blank padding is, then:

1. a reference send of the whole database to a local store (wall time, stored bytes);
2. a second job: SIGKILL the sender once its store holds half the reference's bytes, then run
   the same send again (a new snapshot: the old one died with the process), no writes between.

Bytes uploaded twice = pack bytes stored at the kill + pack bytes the second run sent - pack
bytes the reference run sent (the same content, sent once). Uploads cut by the kill never
become objects of a local store and are not counted: over HTTP they would add at most the
in-flight window (4 packs of 16 MiB). The second run reads the whole database again (its
snapshot is new, so no entry is reused), but content-defined chunks the host already holds are
neither sealed nor sent again.
Results go to stdout and perf/results/pg_resume-<scale>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.postgres.cluster import Cluster, remove, start_cluster  # noqa: E402

TRANSFERD = [sys.executable, "-m", "transferd"]
DB = "bench"


def tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            try:
                total += (Path(dirpath) / name).stat().st_size
            except FileNotFoundError:
                continue  # a temporary file renamed or removed meanwhile
    return total


def fill(cluster: Cluster, scale: int) -> None:
    subprocess.run(
        [cluster.tool("pgbench"), "-i", "-q", "-s", str(scale), "-h", "127.0.0.1",
         "-p", str(cluster.port), "-U", "postgres", DB],
        check=True, capture_output=True,
    )  # fmt: skip
    cluster.psql(
        DB,
        "ALTER TABLE pgbench_accounts RENAME TO old_accounts;"
        "CREATE TABLE pgbench_accounts AS SELECT aid, bid, abalance,"
        " rpad(md5(random()::text) || md5(random()::text) || md5(random()::text), 84) AS filler"
        " FROM old_accounts ORDER BY aid;"
        "DROP TABLE old_accounts;"
        "ALTER TABLE pgbench_accounts ADD PRIMARY KEY (aid)",
    )
    cluster.psql(DB, "VACUUM ANALYZE")


def send_cmd(
    cluster: Cluster, store: Path, state: Path, job: str, keys: dict[str, str]
) -> list[str]:
    return [*TRANSFERD, "send", cluster.url(DB), "--to", str(store), "--job", job,
            "--sender-key", keys["sender_key"], "-r", keys["owner"], "--state", str(state),
            "--progress", "never", "--json", "-q"]  # fmt: skip


def run(cmd: list[str]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"send failed ({proc.returncode}): {proc.stderr}")
    return time.perf_counter() - started, json.loads(proc.stdout)


def measure(cluster: Cluster, work: Path, keys: dict[str, str], fraction: float) -> dict[str, Any]:
    db_bytes = int(cluster.psql(DB, "SELECT pg_database_size(current_database())"))
    ref_store = work / "ref-store"
    ref_wall, ref = run(send_cmd(cluster, ref_store, work / "ref-state", "ref", keys))
    ref_stored = tree_bytes(ref_store / "jobs" / "ref")

    store = work / "store"
    objects = store / "jobs" / "half" / "objects"
    cmd = send_cmd(cluster, store, work / "state", "half", keys)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and tree_bytes(objects) < fraction * ref_stored:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_after = time.perf_counter() - started
    stored_at_kill = tree_bytes(objects)
    resume_wall, resumed = run(cmd)
    stored = tree_bytes(store / "jobs" / "half")
    return {
        "database_bytes": db_bytes,
        "reference": {"wall_s": round(ref_wall, 2), "bytes_read": ref["bytes_read"],
                      "bytes_sent": ref["bytes_sent"], "stored_bytes": ref_stored,
                      "mb_per_s_read": round(ref["bytes_read"] / ref_wall / 1e6, 1)},
        "killed_after_s": round(killed_after, 2),
        "stored_at_kill": stored_at_kill,
        "killed_at_fraction": round(stored_at_kill / stored, 3),
        "resume": {"wall_s": round(resume_wall, 2), "bytes_read": resumed["bytes_read"],
                   "bytes_sent": resumed["bytes_sent"],
                   "bytes_deduplicated": resumed.get("bytes_deduplicated"),
                   "entries_unchanged": resumed["entries_unchanged"],
                   "packs_adopted": resumed["packs_adopted"]},
        "stored_bytes": stored,
        "uploaded_twice_bytes": stored_at_kill + resumed["bytes_sent"] - ref["bytes_sent"],
    }  # fmt: skip


def fresh_work(work: Path) -> dict[str, str]:
    """An empty work directory with an owner and a sender key: {owner, owner_key, sender_key}."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    owner = subprocess.run([*TRANSFERD, "keygen", "--kind", "recipient", "-o",
                            str(work / "owner.key")], capture_output=True, text=True,
                           check=True).stdout.strip()  # fmt: skip
    subprocess.run([*TRANSFERD, "keygen", "--kind", "sender", "-o", str(work / "sender.key")],
                   capture_output=True, check=True)  # fmt: skip
    return {"owner": owner, "owner_key": str(work / "owner.key"),
            "sender_key": str(work / "sender.key")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=70)
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "transferd-pg-resume"
    )
    args = parser.parse_args()
    keys = fresh_work(args.work)
    cluster = start_cluster()
    try:
        cluster.psql("postgres", f"CREATE DATABASE {DB}")
        t = time.perf_counter()
        fill(cluster, args.scale)
        print(f"filled scale {args.scale} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        result = measure(cluster, args.work, keys, args.fraction)
    finally:
        remove(cluster)
    result["scale"] = args.scale
    result["commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                      capture_output=True, text=True).stdout.strip()  # fmt: skip
    result["cores"] = os.cpu_count()
    text = json.dumps(result, indent=2)
    print(text)
    out = REPO / "perf" / "results" / f"pg_resume-{args.scale}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
