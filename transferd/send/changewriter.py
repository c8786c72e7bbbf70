"""Seal a follow's change streams into packs: chunk, hash, compress, encrypt, pack, upload.

The send pipeline (send/pipeline.py) reads a source's items in bulk and records them as catalog
entries; the changes are neither: one stream at a time, a few KiB to a few GiB, arriving as the
database commits, whose chunk references go into change segments rather than the catalog. So
this module drives the same core functions (chunking, envelope, packs) in one short sequence of
its own, on a worker thread per batch so the event loop stays free for the replication stream.

Each stream ends with its pack shipped and acknowledged (``finish_stream``): a segment is sealed
only over packs the host holds, and the manifest naming it only after that (SPEC.md §12's write
order). Memory: one pack being filled, plus at most ``uploads`` packs in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import zstandard

from transferd.core import chunking, envelope
from transferd.core.constants import NONCE_SIZE, PACK_TARGET
from transferd.core.jobkey import JobKey
from transferd.core.packs import PackBuilder, PackEntry
from transferd.stores.base import Store

OnPack = Callable[[str, int, list[PackEntry]], Awaitable[None]]
"""Called once the host acknowledged a pack: (name, size, its chunks). It records the pack."""


@dataclass(frozen=True, slots=True)
class PlacedChunk:
    """A chunk of a stream, located by pack *name*: the pack index is known at sealing time."""

    pack: str
    offset: int
    blob_len: int
    plain_len: int
    chunk_id: bytes


@dataclass(frozen=True)
class WrittenStream:
    chunks: tuple[PlacedChunk, ...]
    size: int
    blake3: str


class ChangeWriter:
    def __init__(
        self,
        job: str,
        key: JobKey,
        store: Store,
        on_pack: OnPack,
        *,
        level: int = 1,
        pack_target: int = PACK_TARGET,
        uploads: int = 2,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.job = job
        self.key = key
        self.store = store
        self.on_pack = on_pack
        self.level = level
        self.pack_target = pack_target
        self.rng = rng
        self.bytes_sealed = 0
        self.bytes_sent = 0
        self.packs_sent = 0
        self._compressor: zstandard.ZstdCompressor | None = None
        self._slots = asyncio.Semaphore(max(1, uploads))
        self._uploads: set[asyncio.Task[None]] = set()
        self._builder = PackBuilder()
        self._placed: list[tuple[PackEntry, PackBuilder]] = []
        """The stream's chunks so far, each with the builder of the pack it went into."""
        self._names: dict[int, str] = {}
        """id(builder) -> the pack's name, once it is finished."""
        self._chunker = chunking.Chunker()
        self._hasher = chunking.content_hasher()
        self._size = 0

    # --- one stream ------------------------------------------------------------------------

    async def write(self, records: list[bytes]) -> None:
        """Append framed records to the current stream."""
        if not records:
            return
        data = b"".join(records)
        self._size += len(data)
        sealed = await asyncio.to_thread(self._seal, data, False)
        await self._place(sealed)

    async def finish_stream(self) -> WrittenStream:
        """The stream's end: its last chunks sealed, every pack holding them acknowledged."""
        sealed = await asyncio.to_thread(self._seal, b"", True)
        await self._place(sealed)
        if len(self._builder):
            await self._ship()
        await self._wait_uploads()
        chunks = tuple(
            PlacedChunk(self._names[id(b)], e.offset, e.blob_len, e.plain_len, e.chunk_id)
            for e, b in self._placed
        )
        stream = WrittenStream(chunks, self._size, self._hasher.hexdigest())
        self._placed, self._names = [], {}
        self._chunker, self._hasher, self._size = chunking.Chunker(), chunking.content_hasher(), 0
        return stream

    async def close(self) -> None:
        for task in self._uploads:
            task.cancel()
        await asyncio.gather(*self._uploads, return_exceptions=True)

    # --- on a worker thread ----------------------------------------------------------------

    def _seal(self, data: bytes, last: bool) -> list[tuple[bytes, bytearray, int]]:
        if self._compressor is None:
            self._compressor = envelope.new_compressor(self.level)
        self._hasher.update(data)
        pieces = self._chunker.feed(data) if data else []
        if last:
            pieces += self._chunker.finish()
        out = []
        for piece in pieces:
            cid = chunking.chunk_id(self.key.chunk_id_key, piece)
            blob = envelope.seal_payload(
                self.key.chunk_key, cid, piece, self._compressor, self.rng(NONCE_SIZE)
            )
            out.append((cid, blob, len(piece)))
        return out

    # --- packs -----------------------------------------------------------------------------

    async def _place(self, sealed: list[tuple[bytes, bytearray, int]]) -> None:
        for cid, blob, plain_len in sealed:
            entry = self._builder.add(cid, blob, plain_len)
            self._placed.append((entry, self._builder))
            self.bytes_sealed += len(blob)
            if self._builder.size >= self.pack_target or self._builder.is_full():
                await self._ship()

    async def _ship(self) -> None:
        builder, self._builder = self._builder, PackBuilder()
        await self._slots.acquire()
        try:
            nonce = self.rng(NONCE_SIZE)
            data = await asyncio.to_thread(builder.finish, self.key.pack_header_key, nonce)
        except BaseException:
            self._slots.release()
            raise
        name = hashlib.sha256(data).hexdigest()
        self._names[id(builder)] = name
        task = asyncio.create_task(self._upload(name, data, list(builder.entries)))
        self._uploads.add(task)
        task.add_done_callback(self._uploads.discard)

    async def _upload(self, name: str, data: bytes, entries: list[PackEntry]) -> None:
        try:
            await self.store.put_object(self.job, name, data)
            await self.on_pack(name, len(data), entries)
            self.bytes_sent += len(data)
            self.packs_sent += 1
        finally:
            self._slots.release()

    async def _wait_uploads(self) -> None:
        while self._uploads:
            done, _ = await asyncio.wait(set(self._uploads))
            for task in done:
                task.result()  # an upload's error ends the stream
