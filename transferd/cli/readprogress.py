"""Progress of a verify: bytes read of the bytes the manifests name, rate and ETA.

A verify of a national copy reads hundreds of terabytes for hours; on a terminal a live line says
how far it is, elsewhere (a systemd unit, a CI job) a log line every ``interval`` seconds does.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from transferd.cli.output import Output
from transferd.cli.progress import JSON_INTERVAL
from transferd.util.units import human_bytes, human_duration
from transferd.verify.objects import Throughput

log = logging.getLogger("transferd.progress")


def describe(tp: Throughput, now: float) -> str:
    elapsed = max(now - tp.started, 1e-6)
    rate = tp.bytes / elapsed
    total = tp.total_bytes
    line = f"verified {human_bytes(tp.bytes)}"
    if total:
        line += f" of {human_bytes(total)} ({100 * min(tp.bytes, total) / total:.0f}%)"
    line += f", {tp.objects:,} objects, {human_bytes(rate)}/s"
    if total and rate > 0 and tp.bytes < total:
        line += f", ETA {human_duration((total - tp.bytes) / rate)}"
    return line


async def show_progress(
    tp: Throughput, *, interactive: bool, interval: float = 30.0, out: Output | None = None
) -> None:
    """Until cancelled: redraw a line every 0.5 s on a terminal, else log every ``interval``;
    with ``--json`` (``out``), a progress event on stdout every JSON_INTERVAL."""
    if out is not None and out.json_mode:
        while True:
            await asyncio.sleep(JSON_INTERVAL)
            out.progress(
                {"bytes": tp.bytes, "bytes_total": tp.total_bytes, "objects": tp.objects},
                describe(tp, time.monotonic()),
            )
    if interactive:
        try:
            while True:
                sys.stderr.write("\r\x1b[2K" + describe(tp, time.monotonic())[:200])
                sys.stderr.flush()
                await asyncio.sleep(0.5)
        finally:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
    while True:
        await asyncio.sleep(interval)
        log.info("progress: %s", describe(tp, time.monotonic()))
