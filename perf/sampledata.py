"""A deterministic synthetic export of health-insurance claims, for the demo and the benchmarks.

    sampledata.py DIR [--size 1G] [--small-files 20000] [--seed 1] [--jobs N]

Writes, under DIR:
- ``tables/*.csv``: large CSV tables shaped like SNDS extracts (claims, hospital stays, drug
  deliveries), about 80% of the size, compressing ~2.5x with zstd -1 or -3 (ids, dates, amounts);
- ``imaging/*.bin``: incompressible files (scans, already-compressed archives), ~15%;
- ``forms/YYYY/MM/DD/*.txt``: many small files in nested folders (default 20,000 of ~1-8 KiB).

The same arguments always give the same bytes (seeded generators), so runs compare like for like.
Tables are made in 32 MiB segments, each from its own seed, on ``--jobs`` processes (default:
every core): about 50 MB/s per core, so the 4 GiB of the scaling benchmark take about a minute.
Pure standard library: it runs before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path

VERSION = 2
"""Changes whenever the bytes for given arguments change (perf/bench keys its cache on it)."""
SEGMENT = 32 << 20
"""Bytes of table text made from one seed: the unit of parallel generation."""

DRUGS = [f"CIP{n:07d}" for n in range(0, 4000, 7)]
GHM = [
    f"{a:02d}{b}{c:02d}{d}"
    for a in range(1, 28)
    for b in "CKMZ"
    for c in (1, 2, 4, 7)
    for d in "1234"
]
DEPTS = [f"{d:02d}" for d in range(1, 96)] + ["2A", "2B", "971", "972", "973", "974", "976"]
CITIES = ["Paris", "Lyon", "Marseille", "Toulouse", "Lille", "Rennes", "Nantes", "Bordeaux",
          "Strasbourg", "Montpellier", "Nice", "Grenoble", "Dijon", "Brest", "Tours"]  # fmt: skip
DATES = [
    f"{y}-{m:02d}-{d:02d}" for y in range(2015, 2026) for m in range(1, 13) for d in range(1, 29)
]
QTY = [str(q) for q in range(1, 12)]
AGES = [str(a) for a in range(100)]
_AMOUNTS: list[str] = []
HEADER = "patient_id,date,dept,ghm,drug,qty,amount,reimbursed,sex,age,city\n"


def parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.lower().removesuffix("ib").removesuffix("b")
    return int(float(t[:-1]) * units[t[-1]]) if t[-1] in units else int(t)


def _amounts() -> list[str]:
    """Every amount and its 70% reimbursement, formatted once (a row picks one)."""
    if not _AMOUNTS:
        _AMOUNTS.extend(f"{c / 100:.2f},{c / 100 * 0.7:.2f}" for c in range(100, 250000))
    return _AMOUNTS


def claims_lines(rng: random.Random, n: int) -> str:
    """``n`` claim rows, one column at a time (C-level choices and joins: ~50 MB/s)."""
    pick = rng.choices
    pids = [str(10**12 + b) for b in map(rng.getrandbits, repeat(43, n))]
    columns = (pids, pick(DATES, k=n), pick(DEPTS, k=n), pick(GHM, k=n), pick(DRUGS, k=n),
               pick(QTY, k=n), pick(_amounts(), k=n), pick("MF", k=n), pick(AGES, k=n),
               pick(CITIES, k=n))  # fmt: skip
    return "\n".join(map(",".join, zip(*columns, strict=True))) + "\n"


def _segment(args: tuple[str, int]) -> bytes:
    """``size`` bytes of rows from the seed named by ``key`` (the last row cut short)."""
    key, size = args
    rng = random.Random(key)
    parts, made = [], 0
    while made < size:
        text = claims_lines(rng, 4000)
        parts.append(text)
        made += len(text)
    return "".join(parts).encode()[:size]


def _segments(name: str, size: int, seed: int) -> Iterator[tuple[str, int]]:
    body = max(0, size - len(HEADER))
    for i, start in enumerate(range(0, body, SEGMENT)):
        yield f"{seed}:{name}:{i}", min(SEGMENT, body - start)


def write_random(path: Path, size: int, seed: bytes) -> None:
    # SHAKE-256 as a seeded stream: fast, incompressible, and the same on every machine.
    with open(path, "wb") as f:
        written, counter = 0, 0
        while written < size:
            block = hashlib.shake_256(seed + counter.to_bytes(8, "big")).digest(
                min(1 << 20, size - written)
            )
            f.write(block)
            written += len(block)
            counter += 1


def generate(root: Path, size: int, small_files: int, seed: int, jobs: int = 0) -> None:
    (root / "tables").mkdir(parents=True, exist_ok=True)
    (root / "imaging").mkdir(parents=True, exist_ok=True)
    small_total = small_files * 3000
    incompressible = int(size * 0.15)
    tables = max(0, size - incompressible - small_total)
    names = ["dcir_claims", "pmsi_stays", "drug_deliveries", "consultations"]
    weights = [0.45, 0.25, 0.2, 0.1]
    with ProcessPoolExecutor(jobs or os.cpu_count() or 1) as pool:
        for name, w in zip(names, weights, strict=True):
            with open(root / "tables" / f"{name}.csv", "wb") as f:
                f.write(HEADER.encode())
                for segment in pool.map(_segment, _segments(name, int(tables * w), seed)):
                    f.write(segment)
    n_bin = max(1, incompressible // (32 << 20))
    for i in range(n_bin):
        write_random(
            root / "imaging" / f"scan_{i:04d}.bin", incompressible // n_bin, f"{seed}:{i}".encode()
        )
    rng = random.Random(f"{seed}:forms")
    for i in range(small_files):
        d = root / "forms" / f"{2015 + i % 10}" / f"{1 + i % 12:02d}" / f"{1 + (i // 12) % 28:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"form_{i:06d}.txt").write_text(claims_lines(rng, rng.randrange(8, 64)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--size", default="1G", help="approximate total size (default 1G)")
    p.add_argument("--small-files", type=int, default=20000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=0, help="processes (default: every core)")
    args = p.parse_args()
    if args.dir.exists() and any(args.dir.iterdir()):
        print(f"sampledata: {args.dir} is not empty", file=sys.stderr)
        return 2
    generate(args.dir, parse_size(args.size), args.small_files, args.seed, args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
