"""Flow control around a store's uploads: a pause valve, bandwidth limits, in-flight accounting.

The daemon wraps each job's store in one ``ThrottledStore`` (inside the retry wrapper, so that a
retried upload pays for its bytes again and every transient failure is counted):

- **pause**: while closed, an upload waits *before* it starts. An upload already started runs to
  its end, so a pause or a stop never cuts one short; a waiting upload that is cancelled was
  never started, and the journal records only uploads that returned (send/journal.py), so
  nothing is acknowledged that was not stored;
- **bandwidth**: the upload takes its size from every bucket it was given (the job's, the
  process's) before it starts (stores/ratelimit.py);
- **accounting**: uploads in flight and waiting, bytes and seconds, transient failures, and the
  manifest being written (the daemon reads "publishing" from it). ``idle()`` returns once no
  upload is in flight: what a stop waits for, up to its deadline.

Reads, listings and deletes pass straight through: they are small, and a paused job may still be
asked what it holds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from transferd.errors import TransientStoreError
from transferd.stores.base import Store
from transferd.stores.forward import ForwardingStore
from transferd.stores.ratelimit import TokenBucket


@dataclass
class FlowStats:
    """What went through the valve; the metrics endpoint reads these."""

    uploads: int = 0
    upload_bytes: int = 0
    upload_seconds: float = 0.0
    in_flight: int = 0
    waiting: int = 0
    transient_errors: int = 0
    manifests: int = 0


class ThrottledStore(ForwardingStore):
    """A Store whose uploads can be paused, rate-limited and counted."""

    def __init__(
        self,
        store: Store,
        buckets: Sequence[TokenBucket] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
        on_manifest: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(store)
        self.buckets = list(buckets)
        self.stats = FlowStats()
        self._clock = clock
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._on_manifest = on_manifest

    # --- the valve --------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return not self._open.is_set()

    def pause(self) -> None:
        """Let uploads in flight finish; start no new one until ``resume``."""
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    async def idle(self) -> None:
        """Return once no upload is in flight."""
        await self._idle.wait()

    async def _admit(self, size: int) -> None:
        self.stats.waiting += 1
        try:
            while True:
                await self._open.wait()
                for bucket in self.buckets:
                    await bucket.acquire(size)
                if self._open.is_set():  # a pause during the bandwidth wait holds it back
                    return
        finally:
            self.stats.waiting -= 1

    async def _upload(self, size: int, call: Callable[[], Awaitable[None]]) -> None:
        await self._admit(size)
        self.stats.in_flight += 1
        self._idle.clear()
        started = self._clock()
        try:
            await call()
        except TransientStoreError:
            self.stats.transient_errors += 1
            raise
        finally:
            self.stats.in_flight -= 1
            self.stats.upload_seconds += self._clock() - started
            if not self.stats.in_flight:
                self._idle.set()
        self.stats.uploads += 1
        self.stats.upload_bytes += size

    # --- the Store contract -------------------------------------------------------------------

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        await self._upload(len(data), lambda: self.inner.put_object(job, name, data))

    async def put_manifest(self, job: str, sequence: int, data: bytes, epoch: int = 0) -> None:
        if self._on_manifest is not None:
            self._on_manifest()
        self.stats.manifests += 1
        await self._upload(len(data), lambda: self.inner.put_manifest(job, sequence, data, epoch))
