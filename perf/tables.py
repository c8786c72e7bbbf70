"""The bench's verdicts and its printed table: the targets of issue 17, as ratios of one run.

Targets are reported, never asserted: a shared 2-core machine gives numbers that move with
other people's load, which is why every figure here is a ratio of methods timed in the same
rounds, printed with the load average seen while they ran.
"""

from __future__ import annotations

from typing import Any

MIB = 1 << 20
RSS_TARGET_MIB = 256


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else round(a / b, 3)


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    m = report.get("methods", {})
    e2e = m.get("transferd_e2e", {})
    rate = e2e.get("mb_s")
    rows: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: float, higher: bool, why: str = "") -> None:
        met = None if value is None else (value >= goal if higher else value <= goal)
        rows.append({"target": name, "value": value, "goal": goal,
                     "direction": ">=" if higher else "<=", "met": met, "note": why})  # fmt: skip

    pipe = m.get("tar_zstd_age_T2", {})
    add("e2e / tar|zstd -3 -T2|age (MB/s)", _ratio(rate, pipe.get("mb_s")), 1.2, True)
    add("stored size / pipe's", _ratio(e2e.get("stored_bytes"), pipe.get("stored_bytes")),
        1.05, False)  # fmt: skip
    add("e2e / restic", _ratio(rate, m.get("restic", {}).get("mb_s")), 3.0, True)
    # CPU seconds per byte of source, the sender's against the whole pipe's (tar, zstd, age):
    # the same dataset for both, so the ratio of CPU seconds is the ratio per GB.
    sender_cpu = e2e.get("procs", {}).get("sender", {}).get("cpu_s")
    add("sender CPU s per GB / the pipe's", _ratio(sender_cpu, pipe.get("cpu_s")), 0.7, False)
    add("e2e / rclone crypt", _ratio(rate, m.get("rclone_crypt", {}).get("mb_s")), 5.0, True)
    add("e2e / in-process pipeline", _ratio(rate, m.get("transferd_inprocess", {}).get("mb_s")),
        0.8, True)  # fmt: skip
    procs = e2e.get("procs", {})
    add("sender peak RSS (MiB)", procs.get("sender", {}).get("peak_rss_mib"), RSS_TARGET_MIB, False)
    add("receiver peak RSS (MiB)", procs.get("receiver", {}).get("peak_rss_mib"), RSS_TARGET_MIB,
        False)  # fmt: skip
    small = report.get("small_files", {}).get("transferd_e2e", {})
    add("20,000 small files, e2e (files/s)", small.get("files_s"), 10_000, True)
    resume = report.get("resume", {})
    if resume.get("wasted_upload_bytes") is not None:
        add(
            "resume: bytes uploaded twice / in-flight window",
            _ratio(resume["wasted_upload_bytes"] or 1e-9, resume["window_bytes"]),
            1.0,
            False,
        )
    return rows


def _fmt(v: float | None, spec: str = ".0f") -> str:
    return "-" if v is None else format(v, spec)


def render(report: dict[str, Any]) -> str:
    lines: list[str] = []
    mach = report.get("machine", {})
    lines.append(
        f"\ncommit {report['commit']}, {report['date']} UTC; {mach.get('cores')} cores "
        f"({mach.get('cpu')}), load average {report['loadavg_start']} at start, "
        f"{report['loadavg_end']} at end"
    )
    if "dataset" in report:
        d = report["dataset"]
        lines.append(f"dataset: {d['bytes'] / 1e6:,.0f} MB in {d['files']:,} files; MB = 10^6 B")
    m = report.get("methods", {})
    if m:
        e2e = m.get("transferd_e2e", {}).get("mb_s")
        lines.append("")
        lines.append(f"{'method':44s} {'MB/s':>7s} {'CPU s':>7s} {'peak RSS MiB':>26s} "
                     f"{'stored/src':>10s} {'e2e ÷ it':>9s}")  # fmt: skip
        for r in m.values():
            rss = " / ".join(f"{n} {p['peak_rss_mib']:.0f}" for n, p in r["procs"].items())
            if len(rss) > 26:
                rss = f"max {r['peak_rss_mib']:.0f}"
            lines.append(
                f"{r['label']:44s} {r['mb_s']:7.1f} {r['cpu_s']:7.2f} {rss:>26s} "
                f"{r['ratio']:10.3f} {_fmt(_ratio(e2e, r['mb_s']), '.2f'):>9s}"
            )
    lim = report.get("limits")
    if lim:
        lines.append("")
        n = lim["threads"]
        lines.append(f"machine limits on the same data (MB/s of source; 1 thread / {n} threads):")
        e2e = m.get("transferd_e2e", {}).get("mb_s")
        for name in ("chunker", "blake3", "zstd", "aead", "sha256", "sealloop"):
            if name in lim:
                row = lim[name]
                lines.append(
                    f"  {name:10s} {row.get('mb_s_1', 0):8.0f} {row.get(f'mb_s_{n}', 0):8.0f}"
                    f"   e2e ÷ it {_fmt(_ratio(e2e, row.get(f'mb_s_{n}')), '.2f')}"
                )
    small = report.get("small_files")
    if small:
        lines.append("")
        for key in ("transferd_e2e", "transferd_inprocess"):
            if key in small:
                r = small[key]
                lines.append(
                    f"{small['files']:,} small files, {key}: {r['wall_s']:.2f} s, "
                    f"{r['files_s']:,.0f} files/s, CPU {r['cpu_s']:.2f} s, peak RSS "
                    f"{r['peak_rss_mib']:.0f} MiB"
                )
    res = report.get("resume")
    if res:
        lines.append("")
        lines.append(
            f"resume after SIGKILL half-way ({res['killed_at_fraction']:.0%} of the bytes stored): "
            f"{_fmt(res.get('wasted_upload_bytes', 0) / MIB, '.1f')} MiB uploaded twice "
            f"(window {res['window_bytes'] / MIB:.0f} MiB), {res.get('packs_adopted')} packs "
            f"adopted, {res['resume_bytes_read'] / 1e6:.0f} MB read again, extra time "
            f"{_fmt(res.get('extra_s'), '.2f')} s"
        )
    rows = report.get("targets")
    if rows:
        lines.append("")
        lines.append("targets (issue 17):")
        for t in rows:
            verdict = {True: "MET", False: "NOT MET", None: "not measured"}[t["met"]]
            lines.append(
                f"  {t['target']:48s} {_fmt(t['value'], '.2f'):>8s} {t['direction']} "
                f"{t['goal']:<6} {verdict}"
            )
    sc = report.get("scaling")
    if sc:
        lines.append("")
        for series in ("size", "files"):
            lines.append(f"scaling by {series}:")
            lines.extend(
                f"  {pt['label']:>10s}: {pt['wall_s']:7.2f} s, {pt['mb_s']:6.1f} MB/s, "
                f"{pt.get('files_s', 0):8.0f} files/s, sender {pt['sender_rss_mib']:.0f} MiB, "
                f"receiver {pt['receiver_rss_mib']:.0f} MiB"
                for pt in sc.get(series, [])
            )
    return "\n".join(lines)
