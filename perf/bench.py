"""perf/bench: transferd against its peers and this machine's limits, on the same data, in one run.

    perf/bench [--size 1G] [--runs 3] [--level 1] [--no-peers] [--only METHOD ...]
    perf/bench --scaling

Builds (once, cached) the synthetic claims export of perf/sampledata.py, then times, on it:
transferd send → serve over loopback into a local store, the pipeline alone in one process,
restic, rclone crypt, tar | zstd -3 | age (-T2 and -T0) and borg; then the machine's limits
(perf/limits.py), 20,000 small files, the cost of a resume after SIGKILL, and a profile of one
end-to-end run. Every method runs once to warm up, then ``--runs`` rounds in turn (method A,
B, C, A, B, C ...) so that load from other users of the machine falls on all of them alike;
the median wall time gives the rate. Results go to perf/results/ as JSON and PNG, profiles to
perf/profiles/, and a table with the targets of issue 17 is printed at the end.

``--scaling`` times transferd end to end from 256 MiB to 10 GiB and from 1,000 to 100,000
files instead (perf/scaling.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import sampledata
from measure import Sample, cache_tree, loadavg, tree_bytes
from methods import METHODS, Context, Method

PERF = Path(__file__).resolve().parent
ROOT = PERF.parent
RESULTS = PERF / "results"
PROFILES = PERF / "profiles"
PEER_PACKAGES = {"restic": "restic", "rclone": "rclone", "zstd": "zstd", "age": "age",
                 "borg": "borgbackup"}  # fmt: skip
SMALL_FILES = 20_000


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


# --- the machine, the commit, the data --------------------------------------------------------


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short=10", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "transferd")
    return head + ("-dirty" if dirty else "")


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
    except OSError:
        mem = "0"
    versions = {}
    for tool, args in (("restic", ["version"]), ("rclone", ["version"]), ("borg", ["--version"]),
                       ("age", ["--version"]), ("zstd", ["--version"])):  # fmt: skip
        if shutil.which(tool):
            out = subprocess.run([tool, *args], capture_output=True, text=True, check=False)
            versions[tool] = (out.stdout or out.stderr).strip().splitlines()[0][:80]
    import aiohttp
    import uvloop
    import zstandard

    versions["python"] = platform.python_version()
    versions["zstandard"] = zstandard.__version__
    versions["aiohttp"] = aiohttp.__version__
    versions["uvloop"] = uvloop.__version__
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "mem_gib": round(int(mem) / 2**20, 1),
        "kernel": platform.release(),
        "versions": versions,
    }


def cache_dir() -> Path:
    base = os.environ.get("TRANSFERD_PERF_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "transferd-perf"
    )
    return Path(base)


def dataset(size: int, small_files: int, seed: int = 1) -> Path:
    """The export of perf/sampledata.py for these arguments, made once and kept in the cache."""
    path = cache_dir() / f"claims-v{sampledata.VERSION}-{size}-{small_files}f-s{seed}"
    done = path.with_name(path.name + ".complete")
    if done.exists():
        return path
    if path.exists():
        shutil.rmtree(path)
    say(f"making the dataset {path.name} (once; cached)")
    started = time.monotonic()
    # in a process of its own, so that this one stays small (its children's figures are theirs)
    subprocess.run(
        [sys.executable, str(PERF / "sampledata.py"), str(path), "--size", str(size),
         "--small-files", str(small_files), "--seed", str(seed)],
        check=True,
    )  # fmt: skip
    done.write_text("")
    say(f"dataset made in {time.monotonic() - started:.0f} s")
    return path


def ensure_peers(wanted: list[Method]) -> list[str]:
    """Install the Debian packages of missing peers (as root); the names still missing."""
    missing = sorted({PEER_PACKAGES[t] for m in wanted for t in m.needs if not shutil.which(t)})
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        say(f"installing {' '.join(missing)} with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
            env=env,
            capture_output=True,
            check=False,
        )
    return sorted({t for m in wanted for t in m.needs if not shutil.which(t)})


# --- running ------------------------------------------------------------------------------------


def summarize(samples: list[Sample], nbytes: int, files: int | None = None) -> dict[str, Any]:
    walls = [s.wall_s for s in samples]
    wall = statistics.median(walls)
    procs: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(p.name for s in samples for p in s.procs):
        mine = [p for s in samples for p in s.procs if p.name == name]
        procs[name] = {
            "cpu_s": round(statistics.median(p.cpu_s for p in mine), 3),
            "peak_rss_mib": round(max(p.peak_rss_mib for p in mine), 1),
        }
    out: dict[str, Any] = {
        "runs": len(samples),
        "wall_s": round(wall, 3),
        "wall_s_all": [round(w, 3) for w in walls],
        "mb_s": round(nbytes / wall / 1e6, 1),
        "cpu_s": round(statistics.median(s.cpu_s for s in samples), 3),
        "peak_rss_mib": round(max(s.peak_rss_mib for s in samples), 1),
        "procs": procs,
        "stored_bytes": samples[-1].extra.get("stored_bytes"),
        "ratio": round(samples[-1].extra.get("stored_bytes", 0) / nbytes, 4),
        "samples": [s.to_json() for s in samples],
    }
    if files:
        out["files_s"] = round(files / wall, 1)
    return out


def prepare_run(ctx: Context) -> None:
    """Outside the clock, before every run: the same page cache for every method.

    Nothing dirty: rclone and tar | zstd | age leave their output unsynced (about 1 GB a run)
    and the kernel wrote it back during whichever run came next; transferd and restic fsync,
    and their fsyncs waited behind it (1 GiB end to end: 5.1 s instead of 4.7 s after 1.5 GB
    left unsynced). And the whole source cached: borg drops what it read from the page cache,
    so the method after it read most of the source from disk (transferd end to end, 4.6-5.0 s
    after itself, 6.3-6.5 s after borg, with 20% more CPU).
    """
    os.sync()
    cache_tree(ctx.source)


def run_rounds(
    chosen: list[Method], ctx: Context, runs: int, warmup: bool = True
) -> dict[str, list[Sample]]:
    samples: dict[str, list[Sample]] = {m.key: [] for m in chosen}
    if warmup:
        for m in chosen:
            say(f"warm-up: {m.label}")
            prepare_run(ctx)
            m.run(ctx)
    for r in range(runs):
        for m in chosen:
            prepare_run(ctx)
            load = loadavg()
            s = m.run(ctx)
            s.extra["loadavg"] = load
            samples[m.key].append(s)
            say(
                f"run {r + 1}/{runs}: {m.label}: {s.wall_s:.2f} s, "
                f"{ctx.source_bytes / s.wall_s / 1e6:.0f} MB/s, {s.cpu_s:.1f} CPU s, load {load[0]}"
            )
    return samples


def run_limits(source: Path, level: int, runs: int) -> dict[str, Any]:
    say("machine limits (perf/limits.py)")
    out = subprocess.run(
        [sys.executable, str(PERF / "limits.py"), str(source), "--level", str(level),
         "--runs", str(runs)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# --- main ---------------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(
        prog="perf/bench", description=__doc__.split("\n\n")[0].removeprefix("perf/bench: ")
    )
    p.add_argument("--size", default="1G", help="dataset size (default 1G)")
    p.add_argument("--runs", type=int, default=3, help="timed runs per method after a warm-up")
    p.add_argument("--level", type=int, default=1, help="transferd's zstd level (default 1)")
    p.add_argument("--no-peers", action="store_true", help="transferd only: no peer tools")
    keys = ", ".join(m.key for m in METHODS)
    p.add_argument("--only", action="append", default=[], metavar="METHOD",
                   help=f"run only these methods ({keys})")  # fmt: skip
    p.add_argument("--no-limits", action="store_true", help="skip the machine limits")
    p.add_argument("--no-small", action="store_true", help="skip the 20,000 small files")
    p.add_argument("--no-resume", action="store_true", help="skip the resume measurement")
    p.add_argument("--no-profile", action="store_true", help="skip profiling")
    p.add_argument("--no-chart", action="store_true", help="write no PNG chart")
    p.add_argument("--scaling", action="store_true", help="the scaling series instead")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    p.add_argument("--profiles", type=Path, default=PROFILES, help="profiles directory")
    p.add_argument("--send-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for transferd send (repeat)")  # fmt: skip
    args = p.parse_args()

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M")
    rev = commit()
    work = cache_dir() / "work"
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "date": stamp,
        "commit": rev,
        "command": " ".join(["perf/bench", *sys.argv[1:]]),
        "machine": machine(),
        "loadavg_start": loadavg(),
    }

    if args.scaling:
        import scaling

        report["scaling"] = scaling.run(work, dataset, args.level, tuple(args.send_arg))
        return finish(report, args, stamp, rev)

    size = sampledata.parse_size(args.size)
    chosen = [m for m in METHODS if not args.only or m.key in args.only]
    if args.no_peers:
        chosen = [m for m in chosen if m.group != "peer"]
    missing = ensure_peers(chosen)
    if missing:
        say(f"not on PATH, skipped: {', '.join(missing)}")
        chosen = [m for m in chosen if not set(m.needs) & set(missing)]

    source = dataset(size, SMALL_FILES if size >= 256 << 20 else 1000)
    nbytes = tree_bytes(source)
    nfiles = sum(len(f) for _, _, f in os.walk(source))
    report["dataset"] = {"path": str(source), "bytes": nbytes, "files": nfiles}
    ctx = Context(source, nbytes, work, args.level, tuple(args.send_arg))
    say(f"dataset: {nbytes / 1e6:.0f} MB in {nfiles:,} files; methods: "
        f"{', '.join(m.key for m in chosen)}")  # fmt: skip

    samples = run_rounds(chosen, ctx, args.runs)
    report["methods"] = {
        m.key: {"label": m.label, "group": m.group, **summarize(samples[m.key], nbytes)}
        for m in chosen
    }

    if not args.no_limits:
        report["limits"] = run_limits(source, args.level, args.runs)

    if not args.no_small:
        small = dataset(0, SMALL_FILES)
        sctx = Context(small, tree_bytes(small), work, args.level, tuple(args.send_arg))
        say(f"{SMALL_FILES:,} small files ({sctx.source_bytes / 1e6:.0f} MB)")
        small_methods = [m for m in METHODS if m.key in ("transferd_e2e", "transferd_inprocess")]
        small_samples = run_rounds(small_methods, sctx, args.runs)
        report["small_files"] = {
            "files": SMALL_FILES,
            "bytes": sctx.source_bytes,
            **{k: summarize(v, sctx.source_bytes, SMALL_FILES) for k, v in small_samples.items()},
        }

    if not args.no_resume:
        import resume

        full = report["methods"].get("transferd_e2e", {}).get("wall_s")
        prepare_run(ctx)
        report["resume"] = resume.measure(ctx, full)

    if not args.no_profile:
        import profiles

        prepare_run(ctx)
        report["profiles"] = profiles.record(ctx, args.profiles, stamp, rev)

    return finish(report, args, stamp, rev)


def finish(report: dict[str, Any], args: argparse.Namespace, stamp: str, rev: str) -> int:
    import tables

    report["loadavg_end"] = loadavg()
    if "methods" in report:
        report["targets"] = tables.targets(report)
    args.out.mkdir(parents=True, exist_ok=True)
    kind = "scaling" if args.scaling else "bench"
    path = args.out / f"{stamp}-{rev}-{kind}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    say(f"results: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    if not args.no_chart:
        png = path.with_suffix(".png")
        if chart(path, png):
            say(f"chart: {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")
    print(tables.render(report))
    return 0


def chart(results: Path, png: Path) -> bool:
    """Draw the chart with matplotlib from a venv of its own (perf/.venv): it is no dependency
    of transferd, and installing it must not touch the development environment."""
    venv = PERF / ".venv"
    python = venv / "bin" / "python"
    stamp = venv / ".requirements"
    want = (PERF / "requirements.txt").read_text()
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        if not stamp.exists() or stamp.read_text() != want:
            say("installing matplotlib into perf/.venv (once)")
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "-r", str(PERF / "requirements.txt")],
                check=True,
                env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
            )
            stamp.write_text(want)
        subprocess.run([str(python), str(PERF / "chart.py"), str(results), str(png)], check=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        say(f"no chart: {exc}")
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
