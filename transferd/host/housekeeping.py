"""What the storage host does while it runs, besides answering: sweep partial uploads, forget
what has expired, sum up refusals.

Partial uploads (temp files under ``jobs/*/tmp/``) are left by an upload that was dropped (client
gone, body timeout) only if this process died before removing them: a killed host leaves the
upload it was receiving. They used to be removed only when a store was opened, and only after an
hour, so a host restarted right after a crash kept them until some later restart. Now the host
sweeps every ``sweep_interval`` seconds, once at start, removing those whose last write is older
than ``partial_max_age``; the store never removes one it is still writing (stores/local.py).

The bytes reclaimed are counted (``HostCounters``) and logged by each sweep that removed anything,
with the total since start. ``transferd serve`` has no metrics endpoint, and one for a single
counter would be a second listener to secure; the daemon, which has one (daemon/metrics.py),
exports these counters there. A store with nothing to sweep (S3: an interrupted multipart upload
is aborted by the store, or by the bucket's AbortIncompleteMultipartUpload lifecycle rule) is
skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from aiohttp import web

log = logging.getLogger("transferd.serve")


@runtime_checkable
class Sweepable(Protocol):
    async def sweep_partials(self, older_than: float) -> tuple[int, int]:
        """Remove the partial uploads whose last write is older than ``older_than`` seconds and
        that nothing in this process is writing; (files, bytes) removed."""
        ...


@dataclass
class HostCounters:
    """What the host reclaimed since it started (daemon/metrics.py exports them)."""

    partials_removed: int = 0
    partial_bytes_reclaimed: int = 0
    sweeps: int = 0


class Housekeeping:
    """One task: every ``tick`` seconds it does what is due. ``run_now`` is for tests."""

    def __init__(
        self,
        *,
        store: object,
        partial_max_age: float,
        sweep_interval: float,
        counters: HostCounters,
        chores: list[Callable[[], None]],
        closing: list[Callable[[], None]] | None = None,
        tick: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store if isinstance(store, Sweepable) else None
        self.partial_max_age, self.sweep_interval = partial_max_age, sweep_interval
        self.counters, self.chores, self.tick, self._clock = counters, chores, tick, clock
        self.closing = closing or []
        """Chores done once more when the host stops (the last sums of refusals)."""
        self._next_sweep = clock()

    async def run(self) -> None:
        while True:
            await self.run_now()
            await asyncio.sleep(self.tick)

    async def run_now(self) -> None:
        for chore in self.chores:
            chore()
        if self.store is not None and self._clock() >= self._next_sweep:
            self._next_sweep = self._clock() + self.sweep_interval
            await self.sweep()

    async def sweep(self) -> None:
        assert self.store is not None  # noqa: S101 - only called with a store that sweeps
        try:
            files, size = await self.store.sweep_partials(self.partial_max_age)
        except Exception:  # a failed sweep is retried next time; the host keeps serving
            log.exception("sweeping partial uploads failed")
            return
        c = self.counters
        c.sweeps += 1
        if files:
            c.partials_removed += files
            c.partial_bytes_reclaimed += size
            log.info(
                "removed %d partial uploads (%s) unwritten for over %g s; %s reclaimed since start",
                files,
                _mib(size),
                self.partial_max_age,
                _mib(c.partial_bytes_reclaimed),
            )


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def housekeeping_context(
    key: web.AppKey[Housekeeping],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context running the application's housekeeping while it is up."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(app[key].run(), name="transferd-housekeeping")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for chore in app[key].closing:
            chore()

    return context
