"""Sealing, on worker threads: chunk ids, the chunk index's verdict, compression, encryption.

The functions here run on the pipeline's sealing threads (and the chunker on a thread of the
loop's default executor); zstd, BLAKE3 and libsodium release the GIL, so every core is busy.
Each sealing thread keeps a compressor of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import zstandard

from transferd.core import chunking, envelope
from transferd.core.constants import CHUNK_MIN, NONCE_SIZE
from transferd.core.jobkey import JobKey
from transferd.send.index import ChunkIndex
from transferd.send.work import Sealed, SealedInline

LEVEL_1_HASH_LOG = 12
"""zstd's hash table at level 1: 2^12 entries instead of the 2^14 level 1 picks for a 1 MiB
chunk, for about 0.35 CPU s less per GB and 1.8% more stored bytes (perf/README.md, item 11).
The frames are ordinary zstd frames: readers and the format do not change. Other levels are
zstd's own."""


def new_compressor(level: int) -> zstandard.ZstdCompressor:
    """The compressor a sealing thread keeps: ``envelope.new_compressor``, with a smaller hash
    table at level 1 (the default)."""
    if level != 1:
        return envelope.new_compressor(level)
    params = zstandard.ZstdCompressionParameters.from_level(
        1, source_size=1 << 20, hash_log=LEVEL_1_HASH_LOG, write_content_size=1, write_checksum=0
    )
    return zstandard.ZstdCompressor(compression_params=params)


class _Local(threading.local):
    compressor: zstandard.ZstdCompressor | None = None


class Sealer:
    """Seals what the chunk index gives out; called from any number of threads at once."""

    def __init__(
        self, key: JobKey, index: ChunkIndex, level: int, rng: Callable[[int], bytes]
    ) -> None:
        self._id_key = key.chunk_id_key
        self._chunk_key = key.chunk_key
        self._index = index
        self._level = level
        self._rng = rng
        self._local = _Local()

    def _compressor(self) -> zstandard.ZstdCompressor:
        comp = self._local.compressor
        if comp is None:
            comp = self._local.compressor = new_compressor(self._level)
        return comp

    def seal_chunks(self, chunks: Sequence[bytes | memoryview]) -> list[Sealed]:
        """Each chunk's id, and its sealed blob if the index gives the chunk to this caller."""
        id_key = self._id_key
        ids = [chunking.chunk_id(id_key, c) for c in chunks]
        given = self._index.claim(ids)  # one question for the batch
        comp, chunk_key, rng = self._compressor(), self._chunk_key, self._rng
        sealed: list[Sealed] = []
        for chunk, cid, mine in zip(chunks, ids, given, strict=True):
            blob = (
                envelope.seal_payload(chunk_key, cid, chunk, comp, rng(NONCE_SIZE))
                if mine
                else None
            )
            sealed.append(Sealed(cid, len(chunk), blob))
        return sealed

    def seal_inline(self, datas: Sequence[bytes]) -> SealedInline:
        """Small files read whole: each one's content hash and chunks, all sealed at once."""
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
        return SealedInline(hashes, counts, self.seal_chunks(chunks))


def cut_and_hash(
    chunker: chunking.Chunker, hasher: object, block: bytes | memoryview
) -> list[memoryview]:
    """A block of a stream into the stream's content hash and its chunker: the chunks it ends."""
    hasher.update(block)  # type: ignore[attr-defined]
    return chunker.feed(block)
