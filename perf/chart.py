"""Draw a bench's results as a PNG: ``chart.py RESULTS.json OUT.png`` (run from perf/.venv).

Throughput of every method beside the machine's limits, or, for a scaling run, time and peak
memory against source size and file count.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = {"transferd": "#1f6feb", "peer": "#8b949e", "limit": "#2da44e"}


def bench_chart(report: dict[str, Any], out: Path) -> None:
    methods = report.get("methods", {})
    labels = [r["label"] for r in methods.values()]
    rates = [r["mb_s"] for r in methods.values()]
    colors = [COLORS[r["group"]] for r in methods.values()]
    limits = report.get("limits", {})
    n = limits.get("threads", 0)
    for name in ("zstd", "sealloop", "aead", "blake3", "chunker"):
        if name in limits:
            labels.append(f"limit: {name} ({n} threads)")
            rates.append(limits[name][f"mb_s_{n}"])
            colors.append(COLORS["limit"])
    small = report.get("small_files", {})
    fig, axes = plt.subplots(1, 2 if small else 1, figsize=(14 if small else 10, 6),
                             gridspec_kw={"width_ratios": [3, 1]} if small else None,
                             squeeze=False)  # fmt: skip
    ax = axes[0][0]
    y = range(len(labels))
    ax.barh(list(y), rates, color=colors)
    for i, rate in enumerate(rates):
        ax.text(rate, i, f" {rate:.0f}", va="center", fontsize=8)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("MB/s of source (log scale; median of runs)")
    d = report.get("dataset", {})
    ax.set_title(
        f"{d.get('bytes', 0) / 1e9:.2f} GB, {d.get('files', 0):,} files; commit "
        f"{report['commit']}; load {report['loadavg_start'][0]}→{report['loadavg_end'][0]}",
        fontsize=9,
    )
    if small:
        ax2 = axes[0][1]
        keys = [k for k in ("transferd_e2e", "transferd_inprocess") if k in small]
        ax2.bar(keys, [small[k]["files_s"] for k in keys], color=COLORS["transferd"])
        ax2.axhline(5000, color="red", linestyle="--", linewidth=1, label="target 5,000/s")
        ax2.set_ylabel("files/s")
        ax2.set_title(f"{small['files']:,} small files", fontsize=9)
        ax2.legend(fontsize=8)
        ax2.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def scaling_chart(report: dict[str, Any], out: Path) -> None:
    sc = report["scaling"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for col, (series, xkey, xlabel) in enumerate(
        (("size", "bytes", "source GB"), ("files", "files", "files"))
    ):
        pts = sc.get(series, [])
        xs = [p[xkey] / (1e9 if xkey == "bytes" else 1) for p in pts]
        ax = axes[0][col]
        ax.plot(xs, [p["wall_s"] for p in pts], "o-", color=COLORS["transferd"], label="measured")
        if len(xs) >= 2 and xs[-1] > 0:
            slope = pts[-1]["wall_s"] / xs[-1]
            ax.plot([0, xs[-1]], [0, slope * xs[-1]], ":", color="gray", label="linear through 0")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("seconds, send → serve end to end")
        ax.legend(fontsize=8)
        ax = axes[1][col]
        ax.plot(xs, [p["sender_rss_mib"] for p in pts], "o-", label="sender")
        ax.plot(xs, [p["receiver_rss_mib"] for p in pts], "s-", label="receiver")
        ax.axhline(256, color="red", linestyle="--", linewidth=1, label="256 MiB target")
        ax.set_ylim(bottom=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("peak RSS, MiB")
        ax.legend(fontsize=8)
    fig.suptitle(
        f"transferd scaling; commit {report['commit']}; load "
        f"{report['loadavg_start'][0]}→{report['loadavg_end'][0]}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> int:
    report = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    if "scaling" in report:
        scaling_chart(report, out)
    else:
        bench_chart(report, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
