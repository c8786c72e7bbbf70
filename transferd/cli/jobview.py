"""How ``transferd jobs`` shows jobs: status lines, the list's table, and the live ``watch``.

Every figure comes from the daemon's status answer (daemon/manager.py ``describe``); this module
only renders it. ``watch`` redraws a table on a terminal (rich's Live display); elsewhere, or with
``--json``, it prints one snapshot per interval, so it can be piped or logged.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from transferd.util.units import format_rate, human_bytes, human_duration


def _rate(s: Mapping[str, Any]) -> str:
    """Bytes sent per second over the daemon's window; "-" when the job is not sending."""
    return f"{human_bytes(s['rate'])}/s" if s.get("rate") is not None else "-"


def _eta(s: Mapping[str, Any]) -> str:
    return human_duration(s["eta_seconds"]) if s.get("eta_seconds") is not None else "-"


def _done(s: Mapping[str, Any]) -> str:
    """What the store holds of the source, not what was read: the reader runs ahead."""
    done = human_bytes(s.get("bytes_settled", s["bytes_read"] + s["bytes_reused"]))
    if s.get("bytes_total"):
        return f"{done} of {human_bytes(s['bytes_total'])}"
    return done


def status_lines(s: Mapping[str, Any]) -> list[str]:
    lines = [
        f"job {s['name']}: {s['phase']}",
        f"  source   {s['source']}",
        f"  store    {s['store']}",
        f"  progress {_done(s)}, {s['entries']:,} entries; rate {_rate(s)}, ETA {_eta(s)}",
        f"  bytes    read {human_bytes(s['bytes_read'])}, compressed "
        f"{human_bytes(s['bytes_compressed'])}, sent {human_bytes(s['bytes_sent'])}, reused "
        f"{human_bytes(s['bytes_reused'])}, deduplicated {human_bytes(s['bytes_deduplicated'])}",
        f"  objects  {s['chunks']:,} chunks sealed, {s['packs_sent']:,} packs sent, "
        f"{s['uploads_in_flight']} uploads in flight",
        f"  limit    {format_rate(s['limit'])}",
    ]
    if s.get("sequence") is not None:
        lines.append(f"  manifest {s['sequence']} (published {s.get('finished') or '-'})")
    f = s.get("follow")
    if f and "published_lsn" in f:  # a follow job (send --follow): its slot's lag
        lines.append(
            f"  follow   {f['phase']}, published up to {f['published_lsn']}, lag "
            f"{f['lag_seconds']:.1f} s; slot {human_bytes(f['slot_unconfirmed_bytes'])} "
            f"unconfirmed, {human_bytes(f['slot_retained_wal_bytes'])} of WAL kept; "
            f"{f['segments']:,} segments, {f['transactions']:,} transactions"
        )
    if s.get("last_error"):
        lines.append(f"  error    {s['last_error']}")
    return lines


def list_lines(result: Mapping[str, Any]) -> list[str]:
    jobs = result["jobs"]
    if not jobs:
        return ["no jobs"]
    rows = [("JOB", "PHASE", "DONE", "SENT", "RATE", "ETA", "LAST ERROR")]
    rows += [
        (s["name"], s["phase"], _done(s), human_bytes(s["bytes_sent"]), _rate(s), _eta(s),
         (s.get("last_error") or "")[:60])
        for s in jobs
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    ]


def _table(result: Mapping[str, Any], gone: bool = False) -> Table:
    title = f"transferd jobs (global limit {format_rate(result.get('bandwidth', 0))})"
    if gone:
        title = "transferd jobs: daemon gone, reconnecting… (the figures below are the last seen)"
    table = Table(title=title, title_justify="left")
    for column in ("job", "phase", "done", "compressed", "sent", "objects", "rate", "ETA"):
        table.add_column(column, justify="left" if column in ("job", "phase") else "right")
    table.add_column("last error", overflow="fold", max_width=50)
    for s in result["jobs"]:
        table.add_row(
            s["name"], s["phase"], _done(s), human_bytes(s["bytes_compressed"]),
            human_bytes(s["bytes_sent"]), f"{s['entries']:,} entries, {s['packs_sent']:,} packs",
            _rate(s), _eta(s), s.get("last_error") or "",
        )  # fmt: skip
    return table


def watch(
    fetch: Callable[[], Mapping[str, Any] | None],
    *,
    interval: float,
    json_mode: bool,
    count: int | None = None,
) -> None:
    """Show ``fetch()`` every ``interval`` seconds until interrupted (or ``count`` times).
    ``fetch`` returns None while the daemon is gone (restarting): the last table stays, titled
    so, and the watch goes on asking."""
    shown = 0
    if sys.stdout.isatty() and not json_mode:
        first = fetch()
        with Live(_table(first or {"jobs": []}), console=Console(), auto_refresh=False) as live:
            last = first
            while count is None or shown < count:
                time.sleep(interval)
                result = fetch()
                last = result or last
                live.update(_table(last or {"jobs": []}, gone=result is None), refresh=True)
                shown += 1
        return
    while count is None or shown < count:
        result = fetch()
        if result is None:
            pass  # fetch said so on stderr, once
        elif json_mode:
            print(json.dumps({"time": time.time(), **result}), flush=True)
        else:
            print("\n".join(list_lines(result)), flush=True)
        shown += 1
        if count is None or shown < count:
            time.sleep(interval)
