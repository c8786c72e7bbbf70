"""A deterministic synthetic export of health-insurance claims, for the demo and the benchmarks.

    sampledata.py DIR [--size 1G] [--small-files 20000] [--seed 1]

Writes, under DIR:
- ``tables/*.csv``: large CSV tables shaped like SNDS extracts (claims, hospital stays, drug
  deliveries), about 80% of the size, compressing ~2.5x with zstd -3 (ids, dates, amounts);
- ``imaging/*.bin``: incompressible files (scans, already-compressed archives), ~15%;
- ``forms/YYYY/MM/DD/*.txt``: many small files in nested folders (default 20,000 of ~1-8 KiB).

The same arguments always give the same bytes (a seeded generator), so runs compare like for like.
Pure standard library: it runs before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from pathlib import Path

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


def parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.lower().removesuffix("ib").removesuffix("b")
    return int(float(t[:-1]) * units[t[-1]]) if t[-1] in units else int(t)


def _claims_lines(rng: random.Random, n: int) -> str:
    out = []
    for _ in range(n):
        pid = rng.randrange(10**12, 10**13)
        y, m, d = rng.randrange(2015, 2026), rng.randrange(1, 13), rng.randrange(1, 29)
        amount = rng.randrange(100, 250000) / 100
        out.append(
            f"{pid},{y}-{m:02d}-{d:02d},{rng.choice(DEPTS)},{rng.choice(GHM)},"
            f"{rng.choice(DRUGS)},{rng.randrange(1, 12)},{amount:.2f},{amount * 0.7:.2f},"
            f"{rng.choice('MF')},{rng.randrange(0, 100)},{rng.choice(CITIES)}\n"
        )
    return "".join(out)


def write_table(path: Path, size: int, rng: random.Random) -> None:
    header = "patient_id,date,dept,ghm,drug,qty,amount,reimbursed,sex,age,city\n"
    with open(path, "w") as f:
        f.write(header)
        written = len(header)
        while written < size:
            block = _claims_lines(rng, 2000)
            block = block[: size - written] if written + len(block) > size else block
            f.write(block)
            written += len(block)


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


def generate(root: Path, size: int, small_files: int, seed: int) -> None:
    rng = random.Random(seed)
    (root / "tables").mkdir(parents=True, exist_ok=True)
    (root / "imaging").mkdir(parents=True, exist_ok=True)
    small_total = small_files * 4600
    incompressible = int(size * 0.15)
    tables = max(0, size - incompressible - small_total)
    names = ["dcir_claims", "pmsi_stays", "drug_deliveries", "consultations"]
    weights = [0.45, 0.25, 0.2, 0.1]
    for name, w in zip(names, weights, strict=True):
        write_table(root / "tables" / f"{name}.csv", int(tables * w), rng)
    n_bin = max(1, incompressible // (32 << 20))
    for i in range(n_bin):
        write_random(
            root / "imaging" / f"scan_{i:04d}.bin", incompressible // n_bin, f"{seed}:{i}".encode()
        )
    for i in range(small_files):
        d = root / "forms" / f"{2015 + i % 10}" / f"{1 + i % 12:02d}" / f"{1 + (i // 12) % 28:02d}"
        d.mkdir(parents=True, exist_ok=True)
        lines = rng.randrange(8, 64)
        (d / f"form_{i:06d}.txt").write_text(_claims_lines(rng, lines))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--size", default="1G", help="approximate total size (default 1G)")
    p.add_argument("--small-files", type=int, default=20000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    if args.dir.exists() and any(args.dir.iterdir()):
        print(f"sampledata: {args.dir} is not empty", file=sys.stderr)
        return 2
    generate(args.dir, parse_size(args.size), args.small_files, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
