"""Verify with the key: open the catalog and every chunk of a version of a job, and say what fails.

This is a restore that writes nothing. It is built on the reader's parts (read/reader.py: the
catalog segments, checked and opened one at a time; core/catalog_walk.py: the walker that refuses
every record sequence the format forbids; read/fetch.py: coalesced, cached pack ranges), but unlike
``JobReader.items()``, which stops at the first damage so a restore never writes a file the
catalog does not vouch for, it goes on: every chunk that fails its tag, its decompression or its
chunk id is a failure naming its file and offset, every stream whose BLAKE3 or size differs is
one, and the walk continues to the end of the catalog, whose totals are checked last.

Work is spread as in the reader: chunks are fetched and opened as tasks, ``2 x workers`` at a
time (libsodium and zstd release the GIL, so every core opens chunks); one consumer takes them in
catalog order and feeds each stream's BLAKE3. Memory is bounded by the chunks in flight, the
pack-range cache and one catalog segment, whatever the job's size.

With ``open_chunks=False`` only the catalog is read (``verify --against`` without ``--deep``):
the entries, their sizes and recorded BLAKE3, for comparison with a source.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import blake3

from transferd.core import envelope
from transferd.core.catalog import ChunkRef
from transferd.core.catalog_walk import Chunks, End, Entry, show
from transferd.core.jobkey import JobKey
from transferd.core.manifest import SignedManifest
from transferd.errors import ObjectNotFoundError, StoreError, TransferdError
from transferd.read.reader import JobReader, parse_segment
from transferd.read.windows import ChunkWindows
from transferd.report.model import Failure, Report
from transferd.stores.base import Store

INLINE_HASH = 256 * 1024
"""Chunks up to this size are hashed on the event loop: a thread hop would cost more."""


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """An entry as the catalog records it, for comparison with a source."""

    entry: Entry
    size: int | None = None
    blake3: str | None = None
    end: dict[str, Any] | None = None
    """A stream's end record, for kind-specific fields (a table's ``rows``)."""


OnEntry = Callable[[CatalogEntry], None]


@dataclass(slots=True)
class _Stream:
    entry: Entry
    hasher: Any = field(default_factory=blake3.blake3)
    damaged: bool = False


@dataclass(slots=True)
class _Chunk:
    stream: _Stream
    offset: int
    ref: ChunkRef
    task: asyncio.Task[bytes]


_Queued = _Chunk | tuple[_Stream, End] | None


class DeepCheck:
    """One walk of one manifest's catalog; ``run()`` fills the report."""

    def __init__(
        self,
        store: Store,
        signed: SignedManifest,
        key: JobKey,
        report: Report,
        *,
        workers: int,
        open_chunks: bool = True,
        on_entry: OnEntry | None = None,
    ) -> None:
        self.reader = JobReader(store, signed, key, workers=workers)
        self.key = key
        self.report = report
        self.workers = max(1, workers)
        self.open_chunks = open_chunks
        self.on_entry = on_entry
        self.complete = False
        """True once the whole catalog was walked (else the checks after the failure are moot)."""
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="transferd-deep")
        self._slots = asyncio.Semaphore(2 * self.workers + 2)

    async def run(self) -> None:
        queue: asyncio.Queue[_Queued] = asyncio.Queue(4 * self.workers + 16)
        producer = asyncio.create_task(self._produce(queue))
        try:
            await self._consume(queue)
            await producer
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
            self._pool.shutdown(wait=True, cancel_futures=True)
            await self.reader.close()
        self._finish()

    # --- walking the catalog ---------------------------------------------------------------

    async def _produce(self, queue: asyncio.Queue[_Queued]) -> None:
        walker = self.reader.walker
        stream: _Stream | None = None
        try:
            async with contextlib.aclosing(self.reader.segments()) as segments:
                async for records in segments:
                    parsed = parse_segment(records)
                    del records
                    soon = ChunkWindows((r for _, r in parsed if r), self.reader.packs.window)
                    for record, refs in parsed:
                        for event in walker.feed(record, refs):
                            if isinstance(event, Entry):
                                if event.is_stream:
                                    stream = _Stream(event)
                                elif self.on_entry is not None:
                                    self.on_entry(CatalogEntry(event))
                            elif isinstance(event, Chunks):
                                assert stream is not None  # noqa: S101 - the walker opened one
                                await self._start(event, stream, soon, queue)
                            else:
                                assert stream is not None  # noqa: S101 - the walker opened one
                                await queue.put((stream, event))
                                stream = None
            walker.finish()
            self.complete = True
        except TransferdError as e:
            self.report.fail(Failure("catalog", f"catalog of manifest {self._seq}: {e.message}"))
        finally:
            await queue.put(None)

    @property
    def _seq(self) -> int:
        return self.reader.manifest.body.sequence

    async def _start(
        self,
        event: Chunks,
        stream: _Stream,
        soon: ChunkWindows,
        queue: asyncio.Queue[_Queued],
    ) -> None:
        if not self.open_chunks:
            return
        offset = event.offset
        for ref in event.refs:
            await self._slots.acquire()
            task = asyncio.create_task(self._open(ref, soon.spans(ref.pack_index)))
            await queue.put(_Chunk(stream, offset, ref, task))
            offset += ref.plain_len

    async def _open(self, ref: ChunkRef, soon: list[tuple[int, int]]) -> bytes:
        blob = await self.reader.packs.blob(ref, soon)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, envelope.open_chunk, self.key, ref.chunk_id, blob, ref.plain_len
        )

    # --- taking chunks in order ------------------------------------------------------------

    async def _consume(self, queue: asyncio.Queue[_Queued]) -> None:
        loop = asyncio.get_running_loop()
        while (item := await queue.get()) is not None:
            if isinstance(item, _Chunk):
                try:
                    data = await item.task
                except TransferdError as e:
                    self._chunk_failed(item, e)
                    continue
                finally:
                    self._slots.release()
                self.report.count("chunks_opened")
                self.report.count("plain_bytes_opened", len(data))
                if item.stream.damaged:
                    continue
                if len(data) <= INLINE_HASH:
                    item.stream.hasher.update(data)
                else:
                    await loop.run_in_executor(self._pool, item.stream.hasher.update, data)
            else:
                self._end(*item)

    def _chunk_failed(self, item: _Chunk, error: TransferdError) -> None:
        item.stream.damaged = True
        path = show(item.stream.entry.path)
        unreadable = isinstance(error, StoreError) and not isinstance(error, ObjectNotFoundError)
        self.report.fail(
            Failure(
                "unreadable" if unreadable else "chunk",
                f"{path} at offset {item.offset}: chunk {item.ref.chunk_id.hex()[:16]}: "
                f"{error.message}",
                path=path,
                offset=item.offset,
                chunk=item.ref.chunk_id.hex(),
            )
        )

    def _end(self, stream: _Stream, end: End) -> None:
        path = show(stream.entry.path)
        if self.open_chunks and not stream.damaged:
            digest = stream.hasher.hexdigest()
            if digest != end.blake3:
                self.report.fail(
                    Failure(
                        "stream",
                        f"{path}: its content hashes to {digest}, the catalog says {end.blake3}",
                        path=path,
                        expected={"size": end.size, "blake3": end.blake3},
                        actual={"blake3": digest},
                    )
                )
        elif stream.damaged:
            self.report.count("streams_damaged")
        if self.on_entry is not None:
            self.on_entry(CatalogEntry(stream.entry, end.size, end.blake3, end.record))

    # --- the end ---------------------------------------------------------------------------

    def _finish(self) -> None:
        walker = self.reader.walker
        report = self.report
        if walker.source is not None:
            report.source = {k: v for k, v in walker.source.items() if k != "t"}
        counts = walker.counts
        for name in ("entries", "files", "streams", "chunks"):
            report.counts[name] = getattr(counts, name)
        report.counts["plain_bytes"] = counts.bytes
        if not self.complete:
            why = "the catalog could not be read to its end"
            for check in ("chunks-open", "streams-intact", "catalog-totals"):
                report.skip(check, why)
            return
        opened = report.counts.get("chunks_opened", 0)
        report.notes["chunks-open"] = f"{opened:,} of {counts.chunks:,} chunks opened"
        report.notes["streams-intact"] = (
            f"{counts.streams:,} streams, {counts.bytes:,} bytes of plaintext"
        )
        report.notes["catalog-totals"] = (
            f"catalog of manifest {self._seq}: {counts.entries:,} entries, {counts.files:,} files"
        )
