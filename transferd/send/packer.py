"""Packs filled in order, on the event loop, and shipped to the store.

A packer takes the work of one queue in order (send/work.py): it puts sealed blobs into the
pack being filled, gathers each entry with the chunk ids it is made of, and hands entries to the
recorder. Several packers (one per lane) fill the same packs. A full pack waits for one of
``uploads`` slots, is finished (header sealed, joined, hashed) on a thread, and uploaded by a
task of its own; once the store returns, the pack and its chunks are recorded in the journal.

The packers never decide whether a chunk is new: a blob the sealing threads made is one the
chunk index gave out (send/index.py), and it goes into a pack whatever the stream it came from
became; a ``Sealed`` without a blob is counted as deduplicated.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import assert_never

from transferd.core.constants import NONCE_SIZE
from transferd.core.jobkey import JobKey
from transferd.core.packs import PackBuilder, PackEntry
from transferd.core.source_entry import SourceEntry
from transferd.send.config import Counters, PipelineConfig
from transferd.send.recorder import Recorder
from transferd.send.work import (
    BlockSealed,
    EntryListed,
    EntryReused,
    InlineBatch,
    Sealed,
    StreamAbandoned,
    StreamRead,
    Work,
)
from transferd.stores.base import Store


class Packer:
    def __init__(
        self,
        job: str,
        key: JobKey,
        store: Store,
        recorder: Recorder,
        config: PipelineConfig,
        counters: Counters,
        rng: Callable[[int], bytes],
    ) -> None:
        self.job = job
        self._header_key = key.pack_header_key
        self.store = store
        self.recorder = recorder
        self.target = config.pack_target
        self.counters = counters
        self._rng = rng
        self._builder = PackBuilder(self.target)
        self._slots = asyncio.Semaphore(config.uploads)
        self._open = asyncio.Event()
        """Cleared by ``hold``: no new pack is shipped (a drain)."""
        self._open.set()
        self._uploads: set[asyncio.Task[None]] = set()
        self._group: asyncio.TaskGroup | None = None

    def start(self, group: asyncio.TaskGroup) -> None:
        """Run uploads as tasks of ``group``: one that fails ends the run at once."""
        self._group = group

    # --- taking work ------------------------------------------------------------------------

    async def take(self, queue: asyncio.Queue[Work | None]) -> None:
        """Everything in ``queue`` until its end marker."""
        while (work := await queue.get()) is not None:
            if await self._take(work):
                await self.recorder.flush()

    async def _take(self, work: Work) -> bool:
        """One work item; True when the recorder has a batch of entries due."""
        c = self.counters
        match work:
            case EntryListed(entry):
                c.entries += 1
                return self.recorder.entry(entry, None)
            case EntryReused(entry):
                c.entries += 1
                c.entries_reused += 1
                c.bytes_reused += entry.size or 0
                return self.recorder.reused(entry.path)
            case InlineBatch(entries, future):
                inline = await asyncio.wrap_future(future)
                return await self._take_inline(entries, inline.hashes, inline.counts, inline.chunks)
            case BlockSealed(stream, future):
                for s in await asyncio.wrap_future(future):
                    if self._place(s):
                        await self._ship()
                    stream.chunk_ids.append(s.chunk_id)
                return False
            case StreamRead(stream, entry):
                c.entries += 1
                return self.recorder.entry(entry, stream.chunk_ids)
            case StreamAbandoned():
                return False
            case _:  # pragma: no cover - mypy checks that every variant is handled
                assert_never(work)

    async def _take_inline(
        self, entries: list[SourceEntry], hashes: list[str], counts: list[int], sealed: list[Sealed]
    ) -> bool:
        due = False
        pos = size = 0
        for e, b3, n in zip(entries, hashes, counts, strict=True):
            ids: list[bytes] = []
            for s in sealed[pos : pos + n]:
                if self._place(s):
                    await self._ship()
                ids.append(s.chunk_id)
            pos += n
            size += e.size or 0
            read = SourceEntry(e.path, e.kind, e.mode, e.mtime_ns, e.size, None, b3, e.extra,
                               e.fingerprint)  # fmt: skip
            due = self.recorder.entry(read, ids) or due
        self.counters.bytes_read += size
        self.counters.entries += len(entries)
        return due

    def _place(self, sealed: Sealed) -> bool:
        """Put a sealed chunk into the pack being filled; True when that pack is to be shipped.
        Not a coroutine: 20,000 small files made 20,000 awaits for the few that ship a pack."""
        c = self.counters
        if sealed.blob is None:
            c.chunks_known += 1
            c.bytes_deduplicated += sealed.plain_len
            return False
        self._builder.add(sealed.chunk_id, sealed.blob, sealed.plain_len)
        c.chunks_new += 1
        c.bytes_new += sealed.plain_len
        c.bytes_sealed += len(sealed.blob)
        return self._builder.is_full()

    # --- shipping ---------------------------------------------------------------------------

    async def _ship(self) -> None:
        builder, self._builder = self._builder, PackBuilder(self.target)
        nonce = self._rng(NONCE_SIZE)
        await self._open.wait()
        # A slot first, then the pack's bytes: a finished pack waiting for a slot held its
        # blobs and its joined copy at once, a fifth pack's worth of memory beside the four
        # being uploaded.
        await self._slots.acquire()
        try:
            data, name = await asyncio.to_thread(_finish_pack, builder, self._header_key, nonce)
        except BaseException:
            self._slots.release()
            raise
        if self._group is None:  # pragma: no cover - the pipeline starts every packer
            raise RuntimeError("Packer.start was not called")
        upload = self._upload(name, data, builder.entries)
        try:
            task = self._group.create_task(upload)
        except RuntimeError:
            upload.close()
            # The uploads' group is shutting down: an upload failed and every task of the run
            # is being cancelled, this one too once it yields. Ending as cancelled leaves the
            # failed upload's error as the run's; a RuntimeError here would hide it as a bug.
            self._slots.release()
            raise asyncio.CancelledError from None
        self._uploads.add(task)
        task.add_done_callback(self._uploads.discard)

    async def _upload(self, name: str, data: bytes, entries: list[PackEntry]) -> None:
        try:
            await self.store.put_object(self.job, name, data)
            await self.recorder.pack_stored(name, len(data), entries)
            self.counters.bytes_sent += len(data)
            self.counters.packs_sent += 1
        finally:
            self._slots.release()

    async def finish(self) -> None:
        """Ship the last pack and wait for every upload."""
        if len(self._builder):
            await self._ship()
        await self.idle()

    # --- control ----------------------------------------------------------------------------

    def hold(self) -> None:
        """Ship no new pack: a full pack waits (and its packer with it) until ``release``."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def idle(self) -> None:
        """Return once no upload is in flight."""
        while self._uploads:
            await asyncio.wait(set(self._uploads))

    def cancel_uploads(self) -> int:
        """Cancel the uploads still in flight (never acknowledged: they are sent again)."""
        for task in self._uploads:
            task.cancel()
        return len(self._uploads)


def _finish_pack(builder: PackBuilder, key: bytes, nonce: bytes) -> tuple[bytes, str]:
    data = builder.finish(key, nonce)
    return data, hashlib.sha256(data).hexdigest()
