"""The follow's consumer: messages from the slot become change segments, sealed at commits.

One task takes the replication stream's messages in order (sources/postgres/slot.py), passes each
through the change tracker (sources/postgres/changes.py) and appends what it keeps to the current
segment's stream (send/changewriter.py). A segment is sealed only between transactions, when:

- its stream reached ``segment_bytes`` (64 MiB: one segment a minute under a heavy load);
- its oldest transaction waits for ``max_age`` seconds (the lag a steady trickle may build);
- nothing arrived for ``idle`` seconds: a quiet database is published at once, and a source
  that is shutting down is not kept waiting (a stopping server waits until every change it sent
  is confirmed, up to ``wal_sender_timeout``);
- the cut-over marker arrived (sealed with the sequences' values, as the job's last segment).

What sealing does is the sink's (send/follow.py): during the copy, record the segment locally and
confirm it to the slot; after it, publish a manifest naming it, then confirm. The consumer
never confirms anything itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from transferd.core.pgoutput import PG_EPOCH_UNIX_US, lsn_text
from transferd.send.changewriter import ChangeWriter, WrittenStream
from transferd.sources.postgres.changes import ChangeTracker, Committed, Marker
from transferd.sources.postgres.slot import Message, ReplicationStream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FollowTuning:
    segment_bytes: int = 64 * 1024 * 1024
    max_age: float = 10.0
    idle: float = 1.0


@dataclass
class FollowStatus:
    """What the follow is doing: progress lines, ``jobs status`` and the metrics read it."""

    phase: str = "starting"
    """``copy`` (snapshot and changes), ``follow``, ``cutover``, ``done``."""
    consistent_lsn: int = 0
    published_lsn: int = 0
    """End of the last segment the host holds under a manifest (during the copy: recorded)."""
    received_lsn: int = 0
    source_lsn: int = 0
    """The source's current WAL position, as last asked."""
    unconfirmed_bytes: int = 0
    retained_bytes: int = 0
    """WAL the source keeps for the slot (``pg_current_wal_lsn() - restart_lsn``)."""
    oldest_unpublished: float | None = None
    """Commit time (Unix seconds) of the oldest transaction received and not yet published."""
    transactions: int = 0
    changes: int = 0
    segments: int = 0
    manifest: int = 0
    cutover_lsn: int | None = None
    started: float = field(default_factory=time.monotonic)

    def lag_seconds(self, now: float | None = None) -> float:
        if self.oldest_unpublished is None:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - self.oldest_unpublished)


@dataclass(frozen=True)
class Sealed:
    start_lsn: int
    end_lsn: int
    transactions: int
    counts: dict[tuple[str, str], list[int]]
    changes: WrittenStream
    cutover: WrittenStream | None = None
    sequences: int = 0


class Sink(Protocol):
    async def sealed(self, segment: Sealed) -> None: ...

    async def sequences(self) -> tuple[bytes, int]:
        """The sequences' setval lines now, and how many: read at the cut-over."""
        ...


class Consumer:
    def __init__(
        self,
        stream: ReplicationStream,
        tracker: ChangeTracker,
        writer: ChangeWriter,
        sink: Sink,
        tuning: FollowTuning,
        status: FollowStatus,
        *,
        start_lsn: int,
        tick: Callable[[], Awaitable[bool]],
    ) -> None:
        self.stream = stream
        self.tracker = tracker
        self.writer = writer
        self.sink = sink
        self.tuning = tuning
        self.status = status
        self.start_lsn = start_lsn
        """The end of the last segment sealed: the next one's start."""
        self.covered = start_lsn
        """The end of the last transaction received (kept or not)."""
        self.tick = tick
        self.marker: int | None = None
        """The cut-over marker's LSN once emitted: the follow ends when it arrives."""
        self._first_at: float | None = None
        self._in_transaction = False

    async def run(self) -> int | None:
        """Until the cut-over marker arrives: its LSN; or None when ``tick`` (called once a
        second, between transactions or not) says to stop. Raises the stream's error."""
        queue = self.stream.queue
        next_tick = time.monotonic() + 1.0
        while True:
            wait = max(0.0, next_tick - time.monotonic())
            if self._pending() and not self._in_transaction:
                wait = min(wait, self.tuning.idle)
            try:
                async with asyncio.timeout(wait):  # not wait_for: stores/ratelimit.py
                    item = await queue.get()
            except TimeoutError:
                item = None
            if isinstance(item, BaseException):
                raise item
            if item is not None:
                end = await self._take(item)
                if end is not None:
                    return end
            elif self._pending() and not self._in_transaction:
                await self.seal()  # idle: publish what waits
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + 1.0
                if await self.tick():
                    return None

    def _pending(self) -> bool:
        return self.covered > self.start_lsn and self.tracker.segment.transactions > 0

    async def _take(self, message: Message) -> int | None:
        self.status.received_lsn = max(self.status.received_lsn, message.data_start)
        kind = message.payload[:1]
        if kind == b"B":
            self._in_transaction = True
        out: list[bytes] = []
        event = self.tracker.feed(message, out)
        if out:
            await self.writer.write(out)
            self.status.changes += sum(1 for r in out if r[4:5] in b"IUDT")
        if isinstance(event, Committed):
            self._in_transaction = False
            self.covered = max(self.covered, event.end_lsn)
            if event.kept:
                self.status.transactions += 1
                if self._first_at is None:
                    self._first_at = time.monotonic()
                    at = (PG_EPOCH_UNIX_US + event.commit_time_us) / 1e6
                    if self.status.oldest_unpublished is None:
                        self.status.oldest_unpublished = at
            if self._due():
                await self.seal()
        elif kind == b"C":
            self._in_transaction = False  # a transaction the host already held, skipped
        elif isinstance(event, Marker) and self.marker is not None and event.lsn >= self.marker:
            await self.seal(cutover=event.lsn)
            return event.lsn
        return None

    def _due(self) -> bool:
        seg = self.tracker.segment
        if seg.size >= self.tuning.segment_bytes:
            return True
        return (
            self._first_at is not None and time.monotonic() - self._first_at >= self.tuning.max_age
        )

    async def seal(self, cutover: int | None = None) -> None:
        """Seal the current segment (between transactions), and hand it to the sink."""
        if self._in_transaction:
            raise RuntimeError("a segment is sealed only between transactions")
        seg = self.tracker.segment
        end = self.covered if cutover is None else cutover
        if cutover is None and (end <= self.start_lsn or seg.transactions == 0):
            return
        changes = await self.writer.finish_stream()
        sealed = Sealed(self.start_lsn, end, seg.transactions, dict(seg.counts), changes)
        if cutover is not None:
            text, count = await self.sink.sequences()
            await self.writer.write([text])
            sealed = Sealed(sealed.start_lsn, end, sealed.transactions, sealed.counts, changes,
                            await self.writer.finish_stream(), count)  # fmt: skip
        await self.sink.sealed(sealed)
        log.info(
            "changes up to %s sealed: %d transactions, %d bytes",
            lsn_text(end), seg.transactions, changes.size,
        )  # fmt: skip
        self.tracker.new_segment()
        self.start_lsn = end
        self._first_at = None
        self.status.oldest_unpublished = None
        self.status.segments += 1
