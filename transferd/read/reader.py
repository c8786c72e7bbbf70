"""Read a stored copy back: the reading side shared by ``restore`` and ``verify --deep``.

``open_job`` finds the job's manifest (the newest, or a given sequence), checks its signature
(against the expected sender when one is given; otherwise it says who signed it, in a warning)
and unwraps the job key with a recipient identity. ``JobReader.items()`` then yields, in catalog
order, every entry, the verified plaintext of each chunk of each stream, and the end of each
stream once its size and BLAKE3 have been checked, so a consumer never finishes a file the
catalog does not vouch for.

How the work is spread (the event loop only orders things; it touches no content):

- catalog segments are fetched one ahead, checked against the manifest's SHA-256 and opened on a
  thread, one at a time: the catalog is held one segment (≤ 4 MiB of records) at a time;
- each chunk is a task: fetch its pack range (``fetch.PackReader``: coalesced, cached, shared),
  then open it (``envelope.open_chunk``: tag, decompression, chunk id) on one of ``workers``
  threads. The libraries release the GIL, so every core opens chunks;
- the whole-stream BLAKE3 runs on a thread of its own, fed in order, beside the consumer;
- read-ahead is bounded by bytes (``readahead``): chunks wait to be started until the consumer
  has taken enough of the earlier ones, so memory stays bounded whatever the job's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, overload

import blake3

from transferd.core import catalog, envelope, jobkey, manifest
from transferd.core.catalog import ChunkRef
from transferd.core.catalog_walk import Chunks, End, Entry, Walker, show
from transferd.core.constants import CHUNK_AVG, CHUNK_MAX
from transferd.core.envelope import BLOB_OVERHEAD
from transferd.core.jobkey import JobKey
from transferd.core.keys import RecipientIdentity, SenderPublicKey
from transferd.core.manifest import SignedManifest
from transferd.errors import (
    AuthenticationError,
    FormatError,
    IntegrityError,
    JobNotFoundError,
    TransferdError,
)
from transferd.read.fetch import PackIndex, PackReader, fetch_checked
from transferd.read.windows import ChunkWindows
from transferd.stores.base import Store

log = logging.getLogger(__name__)

Warn = Callable[[str, str | None], None]
"""Receives a warning's message and hint."""

_INLINE_HASH = 256 * 1024
"""Pieces up to this size are hashed on the event loop: a thread hop would cost more."""
_INLINE_OPEN = 64 * 1024
"""Chunks up to this size (small files) are opened on the event loop: tens of microseconds of
work, where a hop to a worker thread and back costs about as much in wake-ups and switches."""
_RECENT_CHUNKS = 4
"""Chunks remembered by id: a run of identical chunks (zeros in a sparse or preallocated file)
is fetched and opened once, not once per occurrence."""


def log_warning(message: str, hint: str | None) -> None:
    log.warning("%s%s", message, f" ({hint})" if hint else "")


@dataclass(frozen=True, slots=True)
class Piece:
    """Verified plaintext of one chunk of a stream, at ``offset`` in it."""

    entry: Entry
    offset: int
    data: bytes


Item = Entry | Piece | End
"""What ``items()`` yields; an ``End`` comes only once its stream's size and BLAKE3 matched."""


@dataclass
class ReadCounters:
    entries: int = 0
    streams: int = 0
    bytes: int = 0
    """Plaintext bytes yielded."""
    chunks: int = 0


async def load_manifest(
    store: Store,
    job: str,
    *,
    sender: SenderPublicKey | None,
    sequence: int | None = None,
    warn: Warn = log_warning,
) -> SignedManifest:
    """The job's newest manifest, its head (SPEC 12.2), or number ``sequence`` (of the highest
    epoch with that number), its signature checked."""
    keys = await store.list_manifests(job)
    if not keys:
        raise JobNotFoundError(
            f"job {job} has no manifest at {store.description}",
            hint="check the job name; a send publishes the manifest when a run completes",
            job=job,
            store=store.description,
        )
    chosen = manifest.head_of(
        keys if sequence is None else [k for k in keys if k.sequence == sequence]
    )
    if chosen is None:
        raise JobNotFoundError(
            f"job {job} has no manifest {sequence} at {store.description}",
            hint=f"it has manifests {keys[0].sequence} to {keys[-1].sequence}",
            job=job,
            store=store.description,
            sequence=sequence,
        )
    number = chosen
    data = await store.get_manifest(job, *chosen)
    signed = manifest.verify(data, sender) if sender is not None else manifest.parse(data)
    body = signed.body
    manifest.check_stored_as(signed, job, *chosen)
    if sender is None:
        warn(
            f"manifest {number} of job {job} is signed by {body.sender}; "
            "no expected sender was given, so who signed it was not checked",
            f"pass --sender {body.sender} if that is the sender you trust",
        )
    return signed


def unwrap_key(signed: SignedManifest, identity: RecipientIdentity) -> JobKey:
    """The job key, unwrapped from the stanza naming ``identity``'s public key.

    Raises NotARecipientError ("this copy is not encrypted to key tdr1…", exit 12) listing the
    job's recipients when none names it.
    """
    body = signed.body
    return jobkey.unwrap(list(body.recipients), identity, body.key_check)


class JobReader:
    """The entries and verified content of one version of a job. Close it (or use ``async with``)
    to stop its threads."""

    def __init__(
        self,
        store: Store,
        signed: SignedManifest,
        key: JobKey,
        *,
        workers: int = 0,
        readahead: int = 0,
        cache_bytes: int | None = None,
    ) -> None:
        self.store = store
        self.manifest = signed
        self.job = signed.body.job
        self.key = key
        self.workers = workers or max(1, os.cpu_count() or 1)
        self.readahead = readahead or max(32 * 1024 * 1024, 4 * self.workers * CHUNK_AVG)
        """Plaintext bytes of chunks started but not yet taken by the consumer."""
        self.counters = ReadCounters()
        self.walker = Walker()
        index = PackIndex(store, self.job, signed.body.object_lists)
        if cache_bytes is None:
            self.packs = PackReader(store, self.job, index)
        else:
            self.packs = PackReader(store, self.job, index, cache_bytes)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="open")
        self._hash_pool = ThreadPoolExecutor(1, thread_name_prefix="blake3")
        self._recent: OrderedDict[bytes, tuple[asyncio.Task[bytes], int]] = OrderedDict()

    async def __aenter__(self) -> JobReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.packs.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._hash_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def source(self) -> dict[str, Any] | None:
        """The catalog's source record, once ``items()`` has read it."""
        return self.walker.source

    @property
    def totals(self) -> dict[str, Any] | None:
        return self.walker.totals

    # --- catalog ---------------------------------------------------------------------------

    async def segments(self) -> AsyncGenerator[list[dict[str, Any]], None]:
        """The catalog's records, one segment at a time, in order; the next one is fetched
        (not opened) while the caller works on the current one."""
        refs = self.manifest.body.catalog
        if not refs:
            raise FormatError(f"manifest {self.manifest.body.sequence} names no catalog")
        fetch: asyncio.Task[bytes] | None = self._fetch_segment(0)
        try:
            for n in range(len(refs)):
                assert fetch is not None  # noqa: S101 - set for every n below len(refs)
                data = await fetch
                fetch = self._fetch_segment(n + 1) if n + 1 < len(refs) else None
                yield await asyncio.to_thread(catalog.open_segment, self.key.catalog_key, n, data)
                del data
        finally:
            if fetch is not None:
                fetch.cancel()
                await asyncio.gather(fetch, return_exceptions=True)

    def _fetch_segment(self, n: int) -> asyncio.Task[bytes]:
        ref = self.manifest.body.catalog[n]
        return asyncio.create_task(fetch_checked(self.store, self.job, ref, "catalog segment"))

    # --- items -----------------------------------------------------------------------------

    @overload
    def items(
        self, wanted: Callable[[Entry], bool] | None = None, held: None = None
    ) -> AsyncGenerator[Item, None]: ...

    @overload
    def items(
        self, wanted: Callable[[Entry], bool] | None, held: Callable[[Entry], bool]
    ) -> AsyncGenerator[Item | Held, None]: ...

    async def items(
        self,
        wanted: Callable[[Entry], bool] | None = None,
        held: Callable[[Entry], bool] | None = None,
    ) -> AsyncGenerator[Item | Held, None]:
        """Every entry, chunk and stream end, in catalog order, each checked before it is
        yielded. Use it under ``contextlib.aclosing`` so that stopping early stops the work.
        A reader walks its catalog once: call ``items()`` once.

        ``wanted``: only the entries it accepts are yielded, and only their chunks fetched and
        opened (the whole catalog is still walked and checked).

        ``held``: streams the caller already holds (a resumed restore). Each comes as ``Held``
        instead of its entry, then its ``End`` straight after, without its chunks: they are
        neither fetched nor opened, and the caller proves its own copy against the ``End``."""
        queue: asyncio.Queue[_Queued] = asyncio.Queue(256)
        budget = _Budget(self.readahead)
        producer = asyncio.create_task(self._produce(queue, budget, wanted, held))
        hasher = _OrderedHasher(self._hash_pool)
        holding = False
        try:
            while True:
                item = await queue.get()
                if item is None:
                    await self.packs.check_damage()  # packs read whole: damage outside blobs
                    break
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Held):
                    self.counters.entries += 1
                    holding = True
                    yield item
                elif isinstance(item, End) and holding:
                    holding = False
                    yield item
                elif isinstance(item, Entry):
                    self.counters.entries += 1
                    if item.is_stream:
                        hasher.start()
                    yield item
                elif isinstance(item, _Pending):
                    try:
                        data = await item.task
                    except TransferdError as exc:
                        raise _about(exc, item.entry, item.offset) from None
                    finally:
                        budget.give(item.ref.plain_len)
                    await hasher.update(data)
                    self.counters.chunks += 1
                    self.counters.bytes += len(data)
                    yield Piece(item.entry, item.offset, data)
                else:
                    digest = await hasher.digest()
                    if digest != item.blake3:
                        raise IntegrityError(
                            f"{show(item.entry.path)}: content does not match its BLAKE3 in the "
                            "catalog: the copy is damaged or was altered"
                        )
                    self.counters.streams += 1
                    yield item
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
            pending = [task for task, _ in self._recent.values()]
            while not queue.empty():
                left = queue.get_nowait()
                if isinstance(left, _Pending):
                    pending.append(left.task)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _produce(
        self,
        queue: asyncio.Queue[_Queued],
        budget: _Budget,
        wanted: Callable[[Entry], bool] | None,
        held: Callable[[Entry], bool] | None,
    ) -> None:
        select = _Selection(wanted, held)
        try:
            async with contextlib.aclosing(self.segments()) as segments:
                async for records in segments:
                    parsed = await asyncio.to_thread(parse_segment, records)
                    del records
                    # the segment's events first, so that the pack ranges fetched together
                    # are those of the chunks to be read, not of chunks skipped
                    events, failure = select.events(self.walker, parsed)
                    soon = ChunkWindows(
                        (e.refs for e in events if isinstance(e, Chunks)), self.packs.window
                    )
                    for queued in events:
                        if isinstance(queued, Chunks):
                            await self._start_chunks(queued, soon, queue, budget)
                        else:
                            await queue.put(queued)
                    if failure is not None:
                        raise failure
            self.walker.finish()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, in order
            await queue.put(exc)
            return
        await queue.put(None)

    async def _start_chunks(
        self,
        event: Chunks,
        soon: ChunkWindows,
        queue: asyncio.Queue[_Queued],
        budget: _Budget,
    ) -> None:
        offset = event.offset
        for ref in event.refs:
            await budget.take(ref.plain_len)
            spans = soon.spans(ref.pack_index)  # for every chunk: it counts them
            task, plain_len = self._recent.get(ref.chunk_id, (None, 0))
            if task is None or plain_len != ref.plain_len:
                task = asyncio.create_task(self._open(ref, spans))
                self._recent[ref.chunk_id] = (task, ref.plain_len)
                if len(self._recent) > _RECENT_CHUNKS:
                    self._recent.popitem(last=False)
            await queue.put(_Pending(event.entry, offset, ref, task))
            offset += ref.plain_len

    async def _open(self, ref: ChunkRef, soon: list[tuple[int, int]]) -> bytes:
        blob = await self.packs.blob(ref, soon)
        if ref.plain_len <= _INLINE_OPEN and ref.blob_len <= _INLINE_OPEN + BLOB_OVERHEAD:
            return envelope.open_chunk(self.key, ref.chunk_id, blob, ref.plain_len)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, envelope.open_chunk, self.key, ref.chunk_id, blob, ref.plain_len
        )


async def open_job(
    store: Store,
    job: str,
    identity: RecipientIdentity,
    *,
    sender: SenderPublicKey | None = None,
    sequence: int | None = None,
    warn: Warn = log_warning,
    workers: int = 0,
) -> JobReader:
    """A reader of the job's newest (or given) manifest, signature checked and key unwrapped."""
    signed = await load_manifest(store, job, sender=sender, sequence=sequence, warn=warn)
    return JobReader(store, signed, unwrap_key(signed, identity), workers=workers)


# --- helpers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Held:
    """A stream the caller holds already (``items(held=…)``): its chunks are not read."""

    entry: Entry


@dataclass(slots=True)
class _Pending:
    entry: Entry
    offset: int
    ref: ChunkRef
    task: asyncio.Task[bytes]


_Queued = Entry | Held | _Pending | End | BaseException | None


Parsed = list[tuple[dict[str, Any], list[ChunkRef] | None]]


def parse_segment(records: list[dict[str, Any]]) -> Parsed:
    """Each record with its chunk references parsed (None for records of other kinds)."""
    return [(r, catalog.record_chunks(r) if r.get("t") == "chunks" else None) for r in records]


def _about(exc: TransferdError, entry: Entry, offset: int) -> TransferdError:
    """The same error, its message naming the file and offset the damaged chunk belongs to."""
    if (
        not isinstance(exc, AuthenticationError | IntegrityError | FormatError)
        or type(exc).__init__ is not TransferdError.__init__
    ):
        return exc
    return type(exc)(f"{show(entry.path)} at offset {offset}: {exc.message}", hint=exc.hint)


class _Selection:
    """Which of the walker's events a reader passes on (``items(wanted, held)``)."""

    def __init__(
        self, wanted: Callable[[Entry], bool] | None, held: Callable[[Entry], bool] | None
    ) -> None:
        self.wanted = wanted
        self.held = held
        self.holding: Entry | None = None
        """The held stream open now (a stream may span segments)."""

    def events(
        self, walker: Walker, parsed: Parsed
    ) -> tuple[list[Entry | Held | Chunks | End], TransferdError | None]:
        """A segment's events to pass on, and the error that stopped the walk after them."""
        events: list[Entry | Held | Chunks | End] = []
        try:
            for record, refs in parsed:
                for event in walker.feed(record, refs):
                    entry = event if isinstance(event, Entry) else event.entry
                    if self.wanted is not None and not self.wanted(entry):
                        continue
                    if isinstance(event, Entry) and event.is_stream and self.held is not None:
                        self.holding = event if self.held(event) else None
                        if self.holding is not None:
                            events.append(Held(event))
                            continue
                    if not (isinstance(event, Chunks) and entry is self.holding):
                        events.append(event)
        except TransferdError as exc:
            return events, exc
        return events, None


class _Budget:
    """Bytes of chunks in flight; a chunk larger than what is free waits until all is free."""

    def __init__(self, limit: int) -> None:
        self._limit = max(limit, CHUNK_MAX)
        self._used = 0
        self._freed = asyncio.Event()

    async def take(self, n: int) -> None:
        while self._used and self._used + n > self._limit:
            self._freed.clear()
            await self._freed.wait()
        self._used += n

    def give(self, n: int) -> None:
        self._used -= n
        self._freed.set()


class _OrderedHasher:
    """The BLAKE3 of the current stream, updated in order on one thread of its own."""

    _MAX_PENDING = 8

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._hasher = blake3.blake3()
        self._pending: deque[Future[Any]] = deque()

    def start(self) -> None:
        self._hasher = blake3.blake3()

    async def update(self, data: bytes) -> None:
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()
        if len(data) <= _INLINE_HASH and not self._pending:
            self._hasher.update(data)
            return
        self._pending.append(self._pool.submit(self._hasher.update, data))
        while len(self._pending) > self._MAX_PENDING:
            await asyncio.wrap_future(self._pending.popleft())

    async def digest(self) -> str:
        while self._pending:
            await asyncio.wrap_future(self._pending.popleft())
        return self._hasher.hexdigest()
