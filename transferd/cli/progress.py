"""Progress of a running send: a live line on a terminal, plain periodic log lines otherwise."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable

from transferd.send.config import Counters
from transferd.util.units import human_bytes, human_duration

log = logging.getLogger("transferd.progress")


def describe(c: Counters, total: int | None, now: float) -> str:
    """One line: done/total, rate, ETA, entries, what was sent."""
    elapsed = max(now - c.started, 1e-6)
    done = c.bytes_read + c.bytes_reused
    rate = done / elapsed
    parts = [f"{human_bytes(done)}" + (f" of {human_bytes(total)}" if total else "")]
    if total:
        parts[0] += f" ({100 * min(done, total) / max(total, 1):.0f}%)"
    parts.append(f"{human_bytes(rate)}/s")
    if total and rate > 0 and done < total:
        parts.append(f"ETA {human_duration((total - done) / rate)}")
    parts.append(f"{c.entries:,} entries")
    parts.append(f"sent {human_bytes(c.bytes_sent)} in {c.packs_sent:,} packs")
    if c.failures:
        parts.append(f"{c.failures} unreadable")
    return ", ".join(parts)


async def report_progress(
    counters: Counters,
    size_hint: Callable[[], Awaitable[int | None]],
    *,
    interactive: bool,
    interval: float = 10.0,
) -> None:
    """Until cancelled: redraw a status line every 0.5 s on a terminal, else log every interval.

    The total comes from ``size_hint`` (for a directory, a second walk of the tree: 0.14 CPU s
    for 20,000 files, taken from the copy's own start). Off a terminal it is first wanted by the
    first log line, so the walk starts half an interval in: a run shorter than that never pays
    for it.
    """
    total: list[int | None] = [None]

    async def measure() -> None:
        if not interactive:
            await asyncio.sleep(interval / 2)
        total[0] = await size_hint()

    sizer = asyncio.create_task(measure())
    try:
        await _report(counters, lambda: total[0], interactive=interactive, interval=interval)
    finally:
        sizer.cancel()
        await asyncio.gather(sizer, return_exceptions=True)


async def _report(
    counters: Counters, total: Callable[[], int | None], *, interactive: bool, interval: float
) -> None:
    if interactive:
        try:
            while True:
                line = describe(counters, total(), time.monotonic())
                sys.stderr.write("\r\x1b[2K" + line[:200])
                sys.stderr.flush()
                await asyncio.sleep(0.5)
        finally:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
    while True:
        await asyncio.sleep(interval)
        log.info("progress: %s", describe(counters, total(), time.monotonic()))
