"""The send pipeline: read → chunk → hash → compress → seal → pack → upload → journal.

Stages and where they run:

- the source lists and reads (its own threads: a listing thread, one read per 8 MiB block);
- chunking and the whole-stream BLAKE3 run per stream, in order, on a worker thread;
- chunk ids, compression and sealing run on ``workers`` threads (zstd, BLAKE3 and libsodium
  release the GIL, so every core is busy);
- the event loop only puts sealed blobs into packs in order, ships full packs, and records
  acknowledgements: it never touches a byte of content except to join a pack.

Memory is bounded whatever the source's size: at most ``queue_blocks`` blocks are between the
reader and the packer, one pack is being filled and at most ``uploads`` packs are in flight.
A chunk the journal already holds (acknowledged by the host) is neither compressed nor sent again;
the packer also skips a chunk already placed earlier in this run (duplicate content).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import zstandard

from transferd.core import chunking, envelope
from transferd.core.constants import CHUNK_MIN, NONCE_SIZE, PACK_TARGET
from transferd.core.jobkey import JobKey
from transferd.core.packs import PackBuilder, PackEntry
from transferd.core.source_entry import SourceEntry
from transferd.errors import SourceChangedError, SourceError
from transferd.send import tuning
from transferd.send.journal import Journal
from transferd.sources.base import FailedItem, InlineItem, Item, MetaItem, Source, StreamItem
from transferd.stores.base import Store

log = logging.getLogger(__name__)

_REREADS = 3
_ENTRY_FLUSH = 2000
"""Entries recorded per journal transaction: one fsync per 2,000 small files, not per file."""
_STREAMS_AHEAD = 256
"""Streams waiting for the stream lane: bounds how far the other items run ahead of them."""


@dataclass(frozen=True)
class PipelineConfig:
    level: int = 1
    """zstd level. On CSV exports level 1 runs ~1.5x faster than 3 for a ratio within 1%
    (perf/README.md): the pipeline is compression-bound, so this is the default."""
    workers: int = max(1, os.cpu_count() or 1)
    uploads: int = 4
    """Packs in flight to the store: hides the round trip; bounds what a crash resends."""
    pack_target: int = PACK_TARGET
    queue_blocks: int = 0
    """Blocks between reader and packer; 0 means one per worker plus 6. Each queued block is
    memory (4 MiB), and the queue is what lets the workers seal on while every upload slot waits
    for the host's fsync: about a pack's worth of source beyond one block per worker. On 1 GiB
    end to end with 2 workers: 4 blocks, 6.18 s and 206 MiB; 8 blocks, 5.48 s and 217 MiB; 12,
    5.40 s and 240 MiB (medians of 3, load 2.5 to 3.6)."""

    def blocks_in_queue(self) -> int:
        return self.queue_blocks or self.workers + 6


@dataclass
class Counters:
    """What the pipeline did so far: the progress display and the metrics read these."""

    bytes_read: int = 0
    bytes_new: int = 0
    """Plaintext bytes of chunks sealed and placed into packs in this run."""
    bytes_sealed: int = 0
    bytes_sent: int = 0
    """Pack bytes the store acknowledged in this run."""
    bytes_reused: int = 0
    """Bytes of unchanged entries, reused from the journal without being read."""
    bytes_deduplicated: int = 0
    """Bytes read whose chunks the host already holds (or this run already packed): not sent."""
    entries: int = 0
    entries_reused: int = 0
    chunks_new: int = 0
    chunks_known: int = 0
    packs_sent: int = 0
    failures: int = 0
    started: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class _Sealed:
    chunk_id: bytes
    plain_len: int
    blob: bytearray | None
    """None when the journal already holds the chunk (acknowledged by the host)."""


@dataclass(slots=True)
class _Stream:
    """An entry being read, and the chunk ids it is made of so far."""

    entry: SourceEntry
    chunk_ids: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class _Work:
    kind: str  # "meta", "reuse", "inline", "block", "end", "abort"
    stream: _Stream | None = None
    entry: SourceEntry | None = None
    future: Future[Any] | None = None
    """(acks, sealed) for a block, from _seal_chunks; (hashes, counts, (acks, sealed)) for an
    inline batch."""
    inline: list[SourceEntry] | None = None
    """For an inline batch: each file's entry as listed; the future holds all their chunks."""


class _SealContext(threading.local):
    compressor: zstandard.ZstdCompressor | None = None


class Pipeline:
    """One run of a job's send pipeline; ``run(source)`` returns when every pack is acknowledged."""

    def __init__(
        self,
        job: str,
        job_key: JobKey,
        store: Store,
        journal: Journal,
        run_number: int,
        config: PipelineConfig,
        counters: Counters | None = None,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.job = job
        self.key = job_key
        self.store = store
        self.journal = journal
        self.run_number = run_number
        self.config = config
        self.counters = counters or Counters()
        self.failures: list[tuple[bytes, str]] = []
        self._rng = rng
        tuning.tune_process()  # before the first worker thread exists
        self._local = _SealContext()
        self._executor = ThreadPoolExecutor(config.workers, thread_name_prefix="seal")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="journal")
        """The journal's writes, in order, off the event loop: each commit is an fsync, which
        stalled every upload and the packer while it lasted (30 ms a commit on a busy disk)."""
        self._flushing: asyncio.Future[None] | None = None
        self._builder = PackBuilder()
        self._placed: set[bytes] = set()
        """Chunks placed into a pack of this run that the journal does not hold yet."""
        self._acks = 0
        """Packs of this run recorded in the journal (and their chunks gone from _placed)."""
        self._entries: list[tuple[SourceEntry, list[bytes] | None]] = []
        self._touched: list[bytes] = []
        self._slots = asyncio.Semaphore(config.uploads)
        self._paused = asyncio.Event()
        self._paused.set()
        self._queues: tuple[asyncio.Queue[_Work | None], ...] = ()

    # --- worker-thread functions ------------------------------------------------------------

    def _compressor(self) -> zstandard.ZstdCompressor:
        comp = self._local.compressor
        if comp is None:
            comp = self._local.compressor = _new_compressor(self.config.level)
        return comp

    def _seal_chunks(self, chunks: Sequence[bytes | memoryview]) -> tuple[int, list[_Sealed]]:
        """Each chunk's id, and its sealed blob unless the journal says the host holds it; and
        how many packs had been acknowledged when the journal was asked."""
        id_key = self.key.chunk_id_key
        ids = [chunking.chunk_id(id_key, c) for c in chunks]
        acks = self._acks  # read before the query: a pack acknowledged after it counts
        known = self.journal.known_chunks(ids)  # one query for the batch
        comp, chunk_key, rng = self._compressor(), self.key.chunk_key, self._rng
        sealed: list[_Sealed] = []
        for chunk, cid in zip(chunks, ids, strict=True):
            if cid in known:
                sealed.append(_Sealed(cid, len(chunk), None))
                continue
            blob = envelope.seal_payload(chunk_key, cid, chunk, comp, rng(NONCE_SIZE))
            sealed.append(_Sealed(cid, len(chunk), blob))
        return acks, sealed

    def _seal_inline(
        self, datas: list[bytes]
    ) -> tuple[list[str], list[int], tuple[int, list[_Sealed]]]:
        hashes: list[str] = []
        counts: list[int] = []
        chunks: list[bytes | memoryview] = []
        for data in datas:
            hashes.append(chunking.content_hasher().update(data).hexdigest())
            if len(data) <= CHUNK_MIN:  # one chunk, as chunking.cut says, without its generator
                if data:
                    chunks.append(data)
                counts.append(1 if data else 0)
                continue
            cut = list(chunking.cut(data))
            counts.append(len(cut))
            chunks += cut
        return hashes, counts, self._seal_chunks(chunks)

    # --- producer: the source, in order ------------------------------------------------------

    async def _produce(
        self,
        source: Source,
        queue: asyncio.Queue[_Work | None],
        blocks: asyncio.Queue[_Work | None],
    ) -> None:
        """Two lanes into one queue, for a source with ``independent_streams``: its streams
        (large files) are read one after another by a task of their own while this task goes on
        with everything else. Small files cost Python on one core and large files zstd on every
        core: in turn, each left a core idle. Other sources' streams are read in this task.

        Each lane has its queue and its packer: with one queue, the small files' batches took
        nearly every free slot (asyncio.Queue does not serve waiting putters first) and the
        large files waited behind them."""
        streams: asyncio.Queue[StreamItem | None] = asyncio.Queue(_STREAMS_AHEAD)
        async with asyncio.TaskGroup() as lanes:
            lanes.create_task(self._stream_lane(streams, blocks))
            with _stray_cancel_is_a_source_error():
                await self._produce_items(source, queue, blocks, streams)
            await streams.put(None)  # on failure the task group cancels the lane instead
        await queue.put(None)
        await blocks.put(None)

    async def _stream_lane(
        self, streams: asyncio.Queue[StreamItem | None], queue: asyncio.Queue[_Work | None]
    ) -> None:
        while (item := await streams.get()) is not None:
            await self._paused.wait()
            await self._produce_stream(item, queue)

    async def _produce_items(
        self,
        source: Source,
        queue: asyncio.Queue[_Work | None],
        blocks: asyncio.Queue[_Work | None],
        streams: asyncio.Queue[StreamItem | None],
    ) -> None:
        inline: list[InlineItem] = []
        inline_bytes = 0

        async def flush_inline() -> None:
            nonlocal inline, inline_bytes
            if not inline:
                return
            batch, inline, inline_bytes = inline, [], 0
            fut = self._executor.submit(self._seal_inline, [i.data for i in batch])
            await queue.put(_Work("inline", future=fut, inline=[i.entry for i in batch]))

        # A job's first run has nothing to reuse: skip 20,000 journal look-ups for 20,000 files.
        may_reuse = self.journal.has_entries()
        # Only a source that says so has streams that can be read while it lists on: a database
        # source reads its tables one after another through the connection that lists them.
        lane = getattr(source, "independent_streams", False)
        async with contextlib.aclosing(_batches(source)) as batches:
            async for batch in batches:
                await self._paused.wait()
                for item in batch:
                    if isinstance(item, MetaItem):
                        await queue.put(_Work("meta", entry=item.entry))
                        continue
                    if isinstance(item, FailedItem):
                        self._fail(item.path, item.message)
                        continue
                    entry = item.entry
                    known = self.journal.reusable_entry(entry.path) if may_reuse else None
                    if (
                        known is not None
                        and known.fingerprint == entry.fingerprint
                        and known.kind == entry.kind
                    ):
                        await queue.put(_Work("reuse", entry=known))
                        continue
                    if isinstance(item, InlineItem):
                        inline.append(item)
                        inline_bytes += len(item.data)
                        if len(inline) >= 256 or inline_bytes >= 8 * 1024 * 1024:
                            await flush_inline()
                        continue
                    if lane:
                        await streams.put(item)
                    else:
                        await self._produce_stream(item, blocks)
        await flush_inline()

    async def _produce_stream(self, item: StreamItem, queue: asyncio.Queue[_Work | None]) -> None:
        for attempt in range(1, _REREADS + 1):
            stream = _Stream(item.entry)
            chunker = chunking.Chunker()
            hasher = chunking.content_hasher()
            size = 0
            try:
                with _stray_cancel_is_a_source_error():
                    async for block in item.blocks():
                        size += len(block)
                        self.counters.bytes_read += len(block)
                        chunks = await asyncio.to_thread(_cut_and_hash, chunker, hasher, block)
                        fut = self._executor.submit(self._seal_chunks, chunks)
                        await queue.put(_Work("block", stream=stream, future=fut))
                        await self._paused.wait()
                    fut = self._executor.submit(self._seal_chunks, chunker.finish())
                    await queue.put(_Work("block", stream=stream, future=fut))
                    entry = await item.finish(size, hasher.hexdigest())
            except SourceChangedError as e:
                await queue.put(_Work("abort", stream=stream))
                if attempt == _REREADS:
                    self._fail(item.entry.path, f"{e.message} ({_REREADS} times)")
                    return
                log.info("%s; reading it again", e.message)
                continue
            except SourceError as e:
                await queue.put(_Work("abort", stream=stream))
                self._fail(item.entry.path, e.message)
                return
            await queue.put(_Work("end", stream=stream, entry=entry))
            return

    def _fail(self, path: bytes, message: str) -> None:
        log.warning("skipping %s: %s", path.decode("utf-8", "backslashreplace"), message)
        self.failures.append((path, message))
        self.counters.failures += 1

    # --- packer: in order, on the event loop ------------------------------------------------

    async def _pack_all(
        self, queues: tuple[asyncio.Queue[_Work | None], ...], tg: asyncio.TaskGroup
    ) -> None:
        """A packer per queue, filling the same packs; then the last pack and entries."""
        async with asyncio.TaskGroup() as packers:
            for queue in queues:
                packers.create_task(self._pack(queue, tg))
        if len(self._builder):
            await self._ship(tg)
        await self._flush_entries()
        if self._flushing is not None:
            await self._flushing

    async def _pack(self, queue: asyncio.Queue[_Work | None], tg: asyncio.TaskGroup) -> None:
        while (work := await queue.get()) is not None:
            if work.kind == "meta":
                assert work.entry is not None  # noqa: S101
                self._entries.append((work.entry, None))
                self.counters.entries += 1
            elif work.kind == "reuse":
                assert work.entry is not None  # noqa: S101
                self._touched.append(work.entry.path)
                self.counters.entries += 1
                self.counters.entries_reused += 1
                self.counters.bytes_reused += work.entry.size or 0
            elif work.kind == "inline":
                assert work.future is not None  # noqa: S101
                assert work.inline is not None  # noqa: S101
                hashes, counts, (acks, sealed) = await asyncio.wrap_future(work.future)
                known = self._acknowledged(acks, sealed)
                pos = 0
                entries, size = self._entries, 0
                for e, b3, n in zip(work.inline, hashes, counts, strict=True):
                    ids: list[bytes] = []
                    for s in sealed[pos : pos + n]:
                        if self._place(s, known):
                            await self._ship(tg)
                            entries = self._entries  # a flush may have swapped the list
                        ids.append(s.chunk_id)
                    pos += n
                    size += e.size or 0
                    entries.append(
                        (SourceEntry(e.path, e.kind, e.mode, e.mtime_ns, e.size, None, b3, e.extra,
                               e.fingerprint), ids)
                    )  # fmt: skip
                self.counters.bytes_read += size
                self.counters.entries += len(work.inline)
            elif work.kind == "block":
                assert work.future is not None  # noqa: S101
                assert work.stream is not None  # noqa: S101
                acks, sealed = await asyncio.wrap_future(work.future)
                known = self._acknowledged(acks, sealed)
                for s in sealed:
                    if self._place(s, known):
                        await self._ship(tg)
                    work.stream.chunk_ids.append(s.chunk_id)
            elif work.kind == "end":
                assert work.stream is not None  # noqa: S101
                assert work.entry is not None  # noqa: S101
                self._entries.append((work.entry, work.stream.chunk_ids))
                self.counters.entries += 1
            # "abort": the stream's chunks stay in packs (harmless); its entry is not recorded
            if len(self._entries) + len(self._touched) >= _ENTRY_FLUSH:
                await self._flush_entries()

    def _acknowledged(self, acks: int, sealed: list[_Sealed]) -> set[bytes]:
        """Chunks sealed by a worker that the host acknowledged since the worker looked (an
        earlier copy's pack), in one query; a chunk placed in this run is in ``_placed``.
        None if no pack was acknowledged since (``acks``, counted after ``_placed`` lost the
        pack's chunks): 20,000 small files asked the journal 80 times for nothing, on the
        event loop."""
        if acks == self._acks:
            return set()
        placed = self._placed
        fresh = [s.chunk_id for s in sealed if s.blob is not None and s.chunk_id not in placed]
        return self.journal.known_chunks(fresh) if fresh else set()

    def _place(self, sealed: _Sealed, known: set[bytes]) -> bool:
        """Put a sealed chunk into the pack being filled; True when that pack is to be shipped.
        Not a coroutine: 20,000 small files made 20,000 awaits for the few that ship a pack."""
        c = self.counters
        if sealed.blob is None or sealed.chunk_id in self._placed or sealed.chunk_id in known:
            c.chunks_known += 1
            c.bytes_deduplicated += sealed.plain_len
            return False
        self._placed.add(sealed.chunk_id)
        self._builder.add(sealed.chunk_id, sealed.blob, sealed.plain_len)
        c.chunks_new += 1
        c.bytes_new += sealed.plain_len
        c.bytes_sealed += len(sealed.blob)
        return self._builder.size >= self.config.pack_target or self._builder.is_full()

    async def _ship(self, tg: asyncio.TaskGroup) -> None:
        builder, self._builder = self._builder, PackBuilder()
        nonce = self._rng(NONCE_SIZE)
        # A slot first, then the pack's bytes: a finished pack waiting for a slot held its
        # blobs and its joined copy at once, a fifth pack's worth of memory beside the four
        # being uploaded.
        await self._slots.acquire()
        try:
            data, name = await asyncio.to_thread(
                _finish_pack, builder, self.key.pack_header_key, nonce
            )
        except BaseException:
            self._slots.release()
            raise
        tg.create_task(self._upload(name, data, builder.entries))

    async def _upload(self, name: str, data: bytes, entries: list[PackEntry]) -> None:
        try:
            await self.store.put_object(self.job, name, data)
            chunks = [(e.chunk_id, e.offset, e.blob_len, e.plain_len) for e in entries]
            await asyncio.wrap_future(
                self._writer.submit(self.journal.record_pack, name, len(data), chunks)
            )
            for e in entries:
                self._placed.discard(e.chunk_id)
            self._acks += 1  # after the discards: see _acknowledged
            self.counters.bytes_sent += len(data)
            self.counters.packs_sent += 1
        finally:
            self._slots.release()

    async def _flush_entries(self) -> None:
        """Hand the entries gathered so far to the journal's thread (which writes in order),
        then wait for the batch before: at most two are queued while the packers go on. Taken
        before the wait, so that two packers never hand over the same entries."""
        if not self._entries and not self._touched:
            return
        entries, touched = self._entries, self._touched
        self._entries, self._touched = [], []
        previous = self._flushing
        self._flushing = asyncio.wrap_future(
            self._writer.submit(self._write_entries, entries, touched)
        )
        # When the batch before fails (a full state directory), this one is never awaited and
        # fails the same way: marked as seen, so that its error is not printed a second time as
        # "Future exception was never retrieved" after the first one ended the run.
        self._flushing.add_done_callback(_seen)
        if previous is not None:
            await previous

    def _write_entries(
        self, entries: list[tuple[SourceEntry, list[bytes] | None]], touched: list[bytes]
    ) -> None:
        if entries:
            self.journal.put_entries(entries, self.run_number)
        if touched:
            self.journal.touch_entries(touched, self.run_number)

    # --- control -------------------------------------------------------------------------------

    def pause(self) -> None:
        """Start no new read; in-flight uploads finish."""
        self._paused.clear()

    def resume(self) -> None:
        self._paused.set()

    def checkpoint(self) -> None:
        """Record in the journal the entries read so far (a stopping daemon calls it once the
        uploads in flight are done): a resume then skips them instead of reading them again.
        Safe at any await point: an entry is reused only once all its chunks are acknowledged."""
        entries, touched = self._entries, self._touched
        self._entries, self._touched = [], []
        try:
            # behind any batch still being written, on the journal's thread, and waited for
            written = self._writer.submit(self._write_entries, entries, touched)
        except RuntimeError:  # the run is over and its writer shut down: write from here
            self._write_entries(entries, touched)
            return
        written.result()

    def queue_depth(self) -> int:
        """Blocks and batches read and waiting for the packers (the metrics show it)."""
        return sum(q.qsize() for q in self._queues)

    async def run(self, source: Source) -> None:
        # Small files and other items: a few batches ahead (each up to 8 MiB, most far less);
        # blocks of large files: as many as the config says (see PipelineConfig.queue_blocks).
        queue: asyncio.Queue[_Work | None] = asyncio.Queue(self.config.workers + 2)
        blocks: asyncio.Queue[_Work | None] = asyncio.Queue(self.config.blocks_in_queue())
        self._queues = (queue, blocks)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._produce(source, queue, blocks))
                tg.create_task(self._pack_all((queue, blocks), tg))
        except BaseExceptionGroup as group:
            raise _first(group) from None
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._writer.shutdown(wait=True)


async def _batches(source: Source) -> AsyncGenerator[Sequence[Item], None]:
    """The source's items in lists: a source with ``batches()`` (the directory) hands out a list
    per event-loop step; any other, one item per list."""
    batches = getattr(source, "batches", None)
    if batches is not None:
        async with contextlib.aclosing(batches()) as listed:
            async for batch in listed:
                yield batch
    else:
        async for item in source.items():
            yield (item,)


LEVEL_1_HASH_LOG = 12
"""zstd's hash table at level 1: 2^12 entries instead of the 2^14 level 1 picks for a 1 MiB
chunk. Compression is the sender's largest cost; on perf/'s 1 GiB (in process, 3 runs each)
this cuts user CPU from 4.7-5.0 to 4.3-4.7 s for 1.8% more stored bytes (522.3 -> 531.8 MB;
2^13: 526.2 MB and half the gain), 2% above what ``tar | zstd -3 | age`` stores. The frames
are ordinary zstd frames: readers and the format do not change. Other levels are zstd's own."""


def _new_compressor(level: int) -> zstandard.ZstdCompressor:
    """The compressor a sealing thread keeps: ``envelope.new_compressor``, with a smaller hash
    table at level 1 (the default)."""
    if level != 1:
        return envelope.new_compressor(level)
    params = zstandard.ZstdCompressionParameters.from_level(
        1, source_size=1 << 20, hash_log=LEVEL_1_HASH_LOG, write_content_size=1, write_checksum=0
    )
    return zstandard.ZstdCompressor(compression_params=params)


def _cut_and_hash(
    chunker: chunking.Chunker, hasher: object, block: bytes | memoryview
) -> list[memoryview]:
    hasher.update(block)  # type: ignore[attr-defined]
    return chunker.feed(block)


def _finish_pack(builder: PackBuilder, key: bytes, nonce: bytes) -> tuple[bytes, str]:
    data = builder.finish(key, nonce)
    return data, hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _stray_cancel_is_a_source_error() -> Iterator[None]:
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


def _seen(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report from a failed run: the first that is not a cancellation."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]
