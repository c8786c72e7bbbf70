"""How transferd's time and memory grow: 256 MiB to 10 GiB of source, 1,000 to 100,000 files.

Both series run ``transferd send`` → ``transferd serve`` end to end, twice per point after one
warm-up run on the smallest point, keeping the faster run's time (other users of the machine only
ever make a run slower) and the higher peak RSS of the two; time should grow linearly, and the
peak RSS of the sender and the receiver should stay flat. The size series keeps 1,000 small
files beside the tables and scans; the files series is small files only (about 3 KB each). The
datasets are cached like the bench's: the first run makes about 19 GB of them (about ten
minutes); a run then takes about 8 minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from measure import tree_bytes
from methods import Context, transferd_e2e

SIZES = [256 << 20, 512 << 20, 1 << 30, 2 << 30, 4 << 30, 10 << 30]
"""To 10 GiB: issue 8's memory target is a flat peak RSS from 256 MiB to 10 GiB."""
FILES = [1_000, 3_000, 10_000, 30_000, 100_000]
SIZE_SERIES_FILES = 1_000


def _label(size: int) -> str:
    return f"{size >> 30} GiB" if size >= 1 << 30 else f"{size >> 20} MiB"


def _point(ctx: Context, label: str, files: int, runs: int = 2) -> dict[str, Any]:
    samples = [transferd_e2e(ctx) for _ in range(runs)]
    s = min(samples, key=lambda x: x.wall_s)
    procs = {p.name: p for p in s.procs}
    peak = {
        name: max(p.peak_rss_mib for x in samples for p in x.procs if p.name == name)
        for name in ("sender", "receiver")
    }
    return {
        "label": label,
        "bytes": ctx.source_bytes,
        "files": files,
        "wall_s": round(s.wall_s, 3),
        "mb_s": round(ctx.source_bytes / s.wall_s / 1e6, 1),
        "files_s": round(files / s.wall_s, 1),
        "sender_cpu_s": procs["sender"].cpu_s,
        "receiver_cpu_s": procs["receiver"].cpu_s,
        "sender_rss_mib": peak["sender"],
        "receiver_rss_mib": peak["receiver"],
        "walls_s": [round(x.wall_s, 3) for x in samples],
        "stored_bytes": s.extra["stored_bytes"],
    }


def run(
    work: Path,
    dataset: Callable[[int, int], Path],
    level: int,
    send_args: tuple[str, ...],
) -> dict[str, Any]:
    from bench import say

    sources = [(size, SIZE_SERIES_FILES, dataset(size, SIZE_SERIES_FILES)) for size in SIZES]
    file_sources = [(0, n, dataset(0, n)) for n in FILES]

    def ctx(path: Path) -> Context:
        return Context(path, tree_bytes(path), work, level, send_args)

    say("scaling: warm-up")
    transferd_e2e(ctx(sources[0][2]))
    size_points = []
    for size, files, path in sources:
        pt = _point(ctx(path), _label(size), files)
        say(f"scaling: {pt['label']}: {pt['wall_s']:.1f} s, sender {pt['sender_rss_mib']:.0f} "
            f"MiB, receiver {pt['receiver_rss_mib']:.0f} MiB")  # fmt: skip
        size_points.append(pt)
    file_points = []
    for _size, files, path in file_sources:
        pt = _point(ctx(path), f"{files:,} files", files)
        say(
            f"scaling: {pt['label']}: {pt['wall_s']:.1f} s, {pt['files_s']:.0f} files/s, "
            f"sender {pt['sender_rss_mib']:.0f} MiB, receiver {pt['receiver_rss_mib']:.0f} MiB"
        )
        file_points.append(pt)
    return {"size": size_points, "files": file_points}
