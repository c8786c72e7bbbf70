"""The producer: the source's items, in order, turned into work for the packers.

Two queues, each with its packer (send/packer.py): ``items`` for everything listed (directories,
reused entries, batches of small files) and ``blocks`` for the blocks of streams. A source with
``independent_streams`` has its streams read by a lane of their own while the listing goes on:
small files cost Python on one core and large files zstd on every core, and in walk order each
left a core idle in turn (perf/README.md, item 10). Other sources' streams are read in the
listing's task, one after another. Each lane has its own queue: with one queue, the small files'
batches took nearly every free slot (asyncio.Queue does not serve waiting putters first) and the
large files waited behind them.

Entries unchanged since the journal recorded them (same path, kind and fingerprint, every chunk
acknowledged) are reused without being read: the journal is asked once per batch of items, on a
thread, never per file on the event loop.

A stream that changes while it is read (``SourceChangedError``) is read again, at most
``rereads`` times in all; a stream that fails is skipped. Either way the run goes on, and the
failure is reported (exit code 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor

from transferd.core import chunking
from transferd.core.source_entry import SourceEntry
from transferd.errors import SourceChangedError, SourceError
from transferd.send.config import Counters
from transferd.send.journal import Journal
from transferd.send.seal import Sealer, cut_and_hash
from transferd.send.work import (
    BlockSealed,
    EntryListed,
    EntryReused,
    InlineBatch,
    Stream,
    StreamAbandoned,
    StreamRead,
    Work,
)
from transferd.sources.base import (
    FailedItem,
    InlineItem,
    Item,
    MetaItem,
    Source,
    StreamItem,
)

log = logging.getLogger(__name__)

REREADS = 3
"""Reads of a stream that keeps changing before it is given up (and reported)."""
INLINE_FILES = 256
INLINE_BYTES = 8 * 1024 * 1024
"""A batch of small files goes to a sealing thread at this many files or bytes."""
STREAMS_AHEAD = 256
"""Streams waiting for the stream lane: bounds how far the other items run ahead of them."""

Queue = asyncio.Queue[Work | None]


class Producer:
    def __init__(
        self,
        journal: Journal,
        sealer: Sealer,
        executor: Executor,
        counters: Counters,
        fail: Callable[[bytes, str], None],
        rereads: int = REREADS,
    ) -> None:
        self._journal = journal
        self._sealer = sealer
        self._executor = executor
        self._counters = counters
        self._fail = fail
        self._rereads = rereads
        self.running = asyncio.Event()
        """Cleared while paused: no new read starts."""
        self.running.set()
        self._inline: list[InlineItem] = []
        self._inline_bytes = 0

    async def run(self, source: Source, items: Queue, blocks: Queue) -> None:
        """Every item of ``source`` into the queues, then an end marker into each."""
        streams: asyncio.Queue[StreamItem | None] = asyncio.Queue(STREAMS_AHEAD)
        async with asyncio.TaskGroup() as lanes:
            if source.independent_streams:
                lanes.create_task(self._stream_lane(streams, blocks))
            with stray_cancel_is_a_source_error():
                await self._list(source, items, blocks, streams)
            await streams.put(None)  # on failure the task group cancels the lane instead
        await items.put(None)
        await blocks.put(None)

    async def _stream_lane(self, streams: asyncio.Queue[StreamItem | None], blocks: Queue) -> None:
        while (item := await streams.get()) is not None:
            await self.running.wait()
            await self._read_stream(item, blocks)

    async def _list(
        self,
        source: Source,
        items: Queue,
        blocks: Queue,
        streams: asyncio.Queue[StreamItem | None],
    ) -> None:
        # A job's first run has nothing to reuse: no lookup for 20,000 files.
        may_reuse = self._journal.has_entries()
        lane = source.independent_streams
        async with contextlib.aclosing(source.batches()) as batches:
            async for batch in batches:
                await self.running.wait()
                known = await self._reusable(batch) if may_reuse else {}
                for item in batch:
                    if isinstance(item, MetaItem):
                        await items.put(EntryListed(item.entry))
                        continue
                    if isinstance(item, FailedItem):
                        self._fail(item.path, item.message)
                        continue
                    entry = item.entry
                    held = known.get(entry.path)
                    if held is not None and (held.fingerprint, held.kind) == (
                        entry.fingerprint,
                        entry.kind,
                    ):
                        await items.put(EntryReused(held))
                    elif isinstance(item, InlineItem):
                        await self._add_inline(item, items)
                    elif lane:
                        await streams.put(item)
                    else:
                        await self._read_stream(item, blocks)
        await self._flush_inline(items)

    async def _reusable(self, batch: Sequence[Item]) -> dict[bytes, SourceEntry]:
        paths = [i.entry.path for i in batch if not isinstance(i, MetaItem | FailedItem)]
        if not paths:
            return {}
        return await asyncio.to_thread(self._journal.reusable_entries, paths)

    async def _add_inline(self, item: InlineItem, items: Queue) -> None:
        self._inline.append(item)
        self._inline_bytes += len(item.data)
        if len(self._inline) >= INLINE_FILES or self._inline_bytes >= INLINE_BYTES:
            await self._flush_inline(items)

    async def _flush_inline(self, items: Queue) -> None:
        if not self._inline:
            return
        batch, self._inline, self._inline_bytes = self._inline, [], 0
        future = self._executor.submit(self._sealer.seal_inline, [i.data for i in batch])
        await items.put(InlineBatch([i.entry for i in batch], future))

    async def _read_stream(self, item: StreamItem, blocks: Queue) -> None:
        """Read one stream to its end, its blocks sealed on the way; again if it changed."""
        for attempt in range(1, self._rereads + 1):
            stream = Stream(item.entry)
            try:
                entry = await self._read_once(item, stream, blocks)
            except SourceChangedError as e:
                await blocks.put(StreamAbandoned(stream))
                if attempt == self._rereads:
                    self._fail(item.entry.path, f"{e.message} ({self._rereads} times)")
                    return
                log.info("%s; reading it again", e.message)
                continue
            except SourceError as e:
                await blocks.put(StreamAbandoned(stream))
                self._fail(item.entry.path, e.message)
                return
            await blocks.put(StreamRead(stream, entry))
            return

    async def _read_once(self, item: StreamItem, stream: Stream, blocks: Queue) -> SourceEntry:
        chunker = chunking.Chunker()
        hasher = chunking.content_hasher()
        size = 0
        seal = self._sealer.seal_chunks
        with stray_cancel_is_a_source_error():
            async for block in item.blocks():
                size += len(block)
                self._counters.bytes_read += len(block)
                chunks = await asyncio.to_thread(cut_and_hash, chunker, hasher, block)
                await blocks.put(BlockSealed(stream, self._executor.submit(seal, chunks)))
                await self.running.wait()
            await blocks.put(BlockSealed(stream, self._executor.submit(seal, chunker.finish())))
            return await item.finish(size, hasher.hexdigest())


@contextlib.contextmanager
def stray_cancel_is_a_source_error() -> Iterator[None]:
    """A CancelledError that nobody asked for, from a source's own code, as a SourceError.

    A library may let a cancellation of its own escape (a timeout or a dropped connection handled
    by cancelling a task). Left as it is, the task group takes it for a cancellation, not a
    failure: the producer ends without its end marker, the packer waits for it forever, and the
    send hangs with no message. ``cancelling()`` tells ours (pause, Ctrl-C, the daemon's cancel)
    from theirs, which re-raise untouched.
    """
    try:
        yield
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise SourceError(
            "reading the source stopped: a library it uses cancelled its own work",
            hint="nothing sent so far is lost; run the same send again to go on",
        ) from None
