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


def _new_fastcdc() -> pyfastcdc.FastCDC:
    return pyfastcdc.FastCDC(
        CHUNK_AVG,
        min_size=CHUNK_MIN,
        max_size=CHUNK_MAX,
        normalized_chunking=CHUNK_NORMALIZATION,
        seed=0,
    )


class Chunker:
    """Cuts one stream fed in pieces exactly as if it had been cut whole.

    Every cut point but the last one of a fed buffer depends only on bytes already seen, so those
    chunks are final; the bytes after the last cut are carried into the next ``feed`` (they may
    grow into a longer chunk), and released by ``finish``. The carry is at most CHUNK_MAX bytes.
    """

    def __init__(self) -> None:
        self._cdc = _new_fastcdc()
        self._carry: bytes = b""
        self.offset = 0
        """Stream offset of the first carried byte: the offset of the next chunk returned."""

    def feed(self, data: Buffer) -> list[memoryview]:
        """Chunks completed by ``data``, as views valid for as long as they are referenced."""
        if not data:
            return []
        buf = self._carry + bytes(data) if self._carry else bytes(data)
        view = memoryview(buf)
        chunks = [view[c.offset : c.offset + c.length] for c in self._cdc.cut_buf(view)]
        last = chunks.pop()
        self._carry = bytes(last)
        self.offset += sum(len(c) for c in chunks)
        return chunks

    def finish(self) -> list[memoryview]:
        """The chunks left when the stream ends (none for an empty stream)."""
        carry, self._carry = self._carry, b""
        if not carry:
            return []
        view = memoryview(carry)
        chunks = [view[c.offset : c.offset + c.length] for c in self._cdc.cut_buf(view)]
        self.offset += len(carry)
        return chunks


def cut(data: Buffer) -> Iterator[memoryview]:
    """Every chunk of a whole in-memory stream (the reference the streaming Chunker matches)."""
    view = memoryview(data)
    for c in _new_fastcdc().cut_buf(view):
        yield view[c.offset : c.offset + c.length]


def chunk_id(chunk_id_key: bytes, plaintext: Buffer) -> bytes:
    """chunk_id = BLAKE3 keyed with K_id over the plaintext: reveals nothing without the key."""
    return blake3.blake3(plaintext, key=chunk_id_key).digest()


def content_hasher() -> blake3.blake3:
    """The plain BLAKE3 of a whole file or table stream, recorded in its catalog `end` record."""
    return blake3.blake3()
