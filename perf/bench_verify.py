"""Verify's read rate on a real copy in a LocalStore: without the key, then with --deep.

    bench_verify.py [--size 200M] [--workers N] [--keep DIR] [--json]

Writes SIZE of incompressible files (so the stored copy is about SIZE too), sends them with
``send`` into a LocalStore in a temp directory (or DIR), then runs ``verify_copy`` three times
without the key (the first read may come from disk, the next from the page cache) and once with
``deep``. Prints objects/s and MB/s of each run, with the machine and commit, as one JSON line
with --json. Numbers on a shared 2-core machine vary by 2x from run to run: compare medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from transferd.core.keys import RecipientIdentity, SenderSecretKey
from transferd.send.config import PipelineConfig
from transferd.send.run import send
from transferd.sources.directory import DirectorySource
from transferd.stores.local import LocalStore
from transferd.verify.run import VerifyOptions, verify_copy

FILE_SIZE = 10_000_000
JOB = "bench-verify"


def parse_size(text: str) -> int:
    units = {"k": 10**3, "m": 10**6, "g": 10**9}
    t = text.lower().rstrip("b")
    return int(float(t[:-1]) * units[t[-1]]) if t[-1] in units else int(t)


async def make_copy(
    root: Path, size: int, sender: SenderSecretKey, owner: RecipientIdentity
) -> None:
    source = root / "source"
    source.mkdir(parents=True)
    for n in range(max(1, size // FILE_SIZE)):
        (source / f"part-{n:04d}.bin").write_bytes(os.urandom(FILE_SIZE))
    store = LocalStore(root / "store")
    await send(
        source=DirectorySource(source),
        store=store,
        job=JOB,
        sender=sender,
        recipients=[owner.public()],
        state_dir=root / "state",
        config=PipelineConfig(),
    )


async def run(root: Path, workers: int, sender: SenderSecretKey, owner: RecipientIdentity,
              deep: bool) -> dict[str, object]:  # fmt: skip
    options = VerifyOptions(workers=workers, identity=owner if deep else None, deep=deep)
    report = await verify_copy(LocalStore(root / "store"), JOB, sender.public(), options)
    if report.verdict != "pass":
        raise SystemExit(f"verify failed: {report.summary()}")
    tp = report.throughput
    return {
        "deep": deep,
        "objects": report.counts["objects_read"],
        "bytes": report.counts["bytes_read"],
        "objects_per_second": tp["objects_per_second"],
        "mb_per_second": round(tp["bytes_per_second"] / 1e6, 1),
        "plain_mb_per_second": round(tp.get("plain_bytes_per_second", 0) / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=parse_size, default=200_000_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", type=Path, help="build the copy here and keep it")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sender = SenderSecretKey.from_bytes(os.urandom(32))
    owner = RecipientIdentity.from_bytes(os.urandom(32))
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        root = args.keep or Path(tmp)
        asyncio.run(make_copy(root, args.size, sender, owner))
        runs = [asyncio.run(run(root, args.workers, sender, owner, False)) for _ in range(3)]
        runs.append(asyncio.run(run(root, args.workers, sender, owner, True)))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()  # fmt: skip
    result = {"machine": platform.machine(), "cores": os.cpu_count(), "commit": commit,
              "command": " ".join(sys.argv), "runs": runs}  # fmt: skip
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['cores']} cores, {result['machine']}, commit {commit}")
    for r in runs:
        what = "deep      " if r["deep"] else "without key"
        extra = f", plaintext {r['plain_mb_per_second']} MB/s" if r["deep"] else ""
        print(f"  {what}: {r['objects']} objects, {r['bytes']:,} bytes: "
              f"{r['objects_per_second']} objects/s, {r['mb_per_second']} MB/s{extra}")  # fmt: skip


if __name__ == "__main__":
    main()
