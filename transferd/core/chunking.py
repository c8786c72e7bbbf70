"""Cut a byte stream into content-defined chunks, and name each chunk by a keyed hash.

FastCDC 2020 places cut points where a rolling gear hash of the content matches a mask, so an
insertion or a changed row moves only the cut points near it: a re-read after an edit, or a
fresh snapshot of a database that barely changed, yields mostly the same chunks and resends
almost nothing. The compiled chunker (pyfastcdc) releases the GIL, so chunking runs on worker
threads beside compression and sealing.
"""

from __future__ import annotations

from collections.abc import Iterator

import blake3
import pyfastcdc

from transferd.core.constants import CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, CHUNK_NORMALIZATION

Buffer = bytes | bytearray | memoryview


def new_fastcdc() -> pyfastcdc.FastCDC:
    """The cutter with the format's parameters (SPEC §6); perf/limits.py measures this one."""
    return pyfastcdc.FastCDC(
        CHUNK_AVG,
        min_size=CHUNK_MIN,
        max_size=CHUNK_MAX,
        normalized_chunking=CHUNK_NORMALIZATION,
        seed=0,
    )


class Chunker:
    """Cuts one stream fed in pieces exactly as if it had been cut whole.

    Every cut point but the last one of a buffer depends only on bytes already seen, so those
    chunks are final; the bytes after the last cut are carried into the next cut (they may grow
    into a longer chunk), and released by ``finish``. Pieces are gathered until at least
    ``CUT_AT`` bytes are pending before cutting, so that feeding 64 KiB pieces (a database COPY
    stream) costs one cut per 4 MiB, not a re-cut of the carry per piece.
    """

    CUT_AT = CHUNK_MAX
    """Enough to cut at once a block of the directory source (4 MiB), which then holds no other
    block alive; pieces of 64 KiB are still gathered into 64 cuts fewer per 4 MiB."""

    def __init__(self) -> None:
        self._cdc = new_fastcdc()
        self._pending: list[bytes] = []
        self._pending_size = 0
        self.offset = 0
        """Stream offset of the first pending byte: the offset of the next chunk returned."""

    def feed(self, data: Buffer) -> list[memoryview]:
        """Chunks completed by ``data``, as views valid for as long as they are referenced."""
        if not data:
            return []
        self._pending.append(bytes(data))
        self._pending_size += len(data)
        if self._pending_size < self.CUT_AT:
            return []
        chunks = self._cut()
        last = chunks.pop()
        self._pending, self._pending_size = [bytes(last)], len(last)
        self.offset += sum(len(c) for c in chunks)
        return chunks

    def finish(self) -> list[memoryview]:
        """The chunks left when the stream ends (none for an empty stream)."""
        if not self._pending_size:
            return []
        chunks = self._cut()
        self.offset += self._pending_size
        self._pending, self._pending_size = [], 0
        return chunks

    def _cut(self) -> list[memoryview]:
        buf = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        view = memoryview(buf)
        return [view[c.offset : c.offset + c.length] for c in self._cdc.cut_buf(view)]


def cut(data: Buffer) -> Iterator[memoryview]:
    """Every chunk of a whole in-memory stream (the reference the streaming Chunker matches)."""
    view = memoryview(data)
    if view.nbytes <= CHUNK_MIN:
        # FastCDC places no cut point before CHUNK_MIN bytes, so a stream this short is one
        # chunk: said without building a chunker, which cost more than hashing a small file.
        if view.nbytes:
            yield view
        return
    for c in new_fastcdc().cut_buf(view):
        yield view[c.offset : c.offset + c.length]


def chunk_id(chunk_id_key: bytes, plaintext: Buffer) -> bytes:
    """chunk_id = BLAKE3 keyed with K_id over the plaintext: reveals nothing without the key."""
    return blake3.blake3(plaintext, key=chunk_id_key).digest()


def content_hasher() -> blake3.blake3:
    """The plain BLAKE3 of a whole file or table stream, recorded in its catalog `end` record."""
    return blake3.blake3()
