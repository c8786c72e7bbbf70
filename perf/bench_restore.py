"""Restore's rate on a real copy in a LocalStore, beside restic and age | zstd | tar.

    bench_restore.py [--size 200M] [--small 2000] [--runs 3] [--keep DIR] [--json]

Writes a tree of SIZE: four CSV-like files (compressible about 3x) and SMALL small files of
random bytes in 20 directories; sends it with ``send`` into a LocalStore; then restores it RUNS
times into fresh directories, with the per-file fsync (as the command does) and without it
(neither peer fsyncs what it restores), and reports the median MB/s of plaintext restored, per
wall-clock second and per CPU-second (all threads; the peers' children), the steadier figure on a
busy machine. The same tree is restored by ``restic restore`` (from a repository made by ``restic
backup``) and by ``age -d | zstd -d | tar -x`` (from one ``tar | zstd -3 | age`` archive) in the
same run, when those tools are installed. Outputs of earlier runs are deleted only at the end:
ext4 takes long to reuse inodes freed a moment before, which would slow the next run for a
reason that is not the restore's. Numbers on a shared 2-core machine vary by 2x from run to run:
compare medians within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from transferd.core.keys import RecipientIdentity, SenderSecretKey
from transferd.restore.directory import restore
from transferd.send.config import PipelineConfig
from transferd.send.run import send
from transferd.sources.directory import DirectorySource
from transferd.stores.local import LocalStore

JOB = "bench-restore"
SENDER = SenderSecretKey(bytes(range(32)))
OWNER = RecipientIdentity(bytes(range(1, 33)))


def parse_size(text: str) -> int:
    units = {"k": 10**3, "m": 10**6, "g": 10**9}
    t = text.lower().rstrip("b")
    return int(float(t[:-1]) * units[t[-1]]) if t[-1] in units else int(t)


def make_tree(root: Path, size: int, small: int) -> int:
    rng = random.Random(5)
    words = [rng.randbytes(6).hex().encode() for _ in range(5000)]
    root.mkdir(parents=True)
    total = 0
    for i in range(4):
        with open(root / f"table{i}.csv", "wb") as f:
            while f.tell() < size * 4 // 5 // 4:
                f.write(b"".join(b",".join(rng.choices(words, k=8)) + b"\n" for _ in range(2000)))
            total += f.tell()
    for j in range(small):
        d = root / f"d{j % 20}"
        d.mkdir(exist_ok=True)
        data = rng.randbytes(rng.randrange(100, 2 * (size // 5) // max(small, 1)))
        (d / f"f{j}.bin").write_bytes(data)
        total += len(data)
    return total


Run = tuple[float, float]
"""Wall seconds, CPU seconds (user + system, all threads or children)."""


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: str, env: dict[str, str] | None = None) -> Run:
    os.sync()
    started, used = time.monotonic(), cpu(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, shell=True, check=True, env=env, stdout=subprocess.DEVNULL)  # noqa: S602
    return time.monotonic() - started, cpu(resource.RUSAGE_CHILDREN) - used


def peers(root: Path, source: Path, runs: int) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(root / "restic")}
    if shutil.which("restic"):
        subprocess.run(["restic", "init", "-q"], env=env, check=True)
        subprocess.run(["restic", "backup", "-q", "."], cwd=source, env=env, check=True)
        out["restic restore"] = [
            timed(f"restic restore -q latest --target {root}/restic-out-{n}", env)
            for n in range(runs)
        ]
    if all(shutil.which(t) for t in ("age", "age-keygen", "zstd", "tar")):
        key = root / "age.key"
        subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
        recipient = subprocess.run(
            ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
        ).stdout.strip()
        archive = root / "tree.tar.zst.age"
        timed(f"tar -C {source} -cf - . | zstd -q -3 -T2 | age -r {recipient} > {archive}")
        times = []
        for n in range(runs):
            target = root / f"tar-out-{n}"
            target.mkdir()
            times.append(timed(f"age -d -i {key} {archive} | zstd -q -d | tar -C {target} -xf -"))
        out["age | zstd | tar"] = times
    return out


async def restores(root: Path, runs: int, workers: int, fsync: bool) -> list[Run]:
    times = []
    for n in range(runs):
        os.sync()
        used = cpu(resource.RUSAGE_SELF)
        result = await restore(
            store=LocalStore(root / "store"), job=JOB, identity=OWNER,
            out=root / f"out-{fsync}-{n}", sender=SENDER.public(), workers=workers, fsync=fsync,
        )  # fmt: skip
        times.append((result.seconds, cpu(resource.RUSAGE_SELF) - used))
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=parse_size, default=parse_size("200M"))
    p.add_argument("--small", type=int, default=2000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--keep", type=Path)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-restore-", dir=os.getcwd()))
    try:
        nbytes = make_tree(root / "source", args.size, args.small)
        started = time.monotonic()
        asyncio.run(send(source=DirectorySource(root / "source"), store=LocalStore(root / "store"),
                         job=JOB, sender=SENDER, recipients=[OWNER.public()],
                         state_dir=root / "state", config=PipelineConfig()))  # fmt: skip
        sent = time.monotonic() - started
        results = {
            "transferd restore": asyncio.run(restores(root, args.runs, args.workers, True)),
            "  without fsync": asyncio.run(restores(root, args.runs, args.workers, False)),
        }
        results.update(peers(root, root / "source", args.runs))
    finally:
        if args.keep is None:
            shutil.rmtree(root)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False, cwd=Path(__file__).parent,
    ).stdout.strip()  # fmt: skip
    rates = {
        k: round(nbytes / statistics.median(w for w, _ in v) / 1e6, 1) for k, v in results.items()
    }
    per_cpu = {
        k: round(nbytes / statistics.median(c for _, c in v) / 1e6, 1) for k, v in results.items()
    }
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "commit": commit,
        "load": os.getloadavg()[0],
        "bytes": nbytes,
        "files": args.small + 4,
        "send_mb_s": round(nbytes / sent / 1e6, 1),
        "mb_s": rates,
        "mb_per_cpu_s": per_cpu,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"{report['machine']}, commit {commit}, load {report['load']:.1f}")
    print(
        f"tree: {nbytes / 1e6:.1f} MB in {report['files']} files; send {report['send_mb_s']} MB/s"
    )
    print(f"  {'':20s} {'MB/s':>8s} {'MB/CPU-s':>9s}   (medians of {args.runs})")
    for name, rate in rates.items():
        print(f"  {name:20s} {rate:8.1f} {per_cpu[name]:9.1f}")


if __name__ == "__main__":
    main()
