"""stream.json: the chunks of one stream, each authentic, against the stream's end record.

SPEC 13.5: a reader releases each chunk once it is opened and checked, but reports the stream
complete only when its end record's size and BLAKE3 match everything released. These vectors
hold chunks that every pass SPEC 13.4 on their own; what is wrong is the stream they make.
"""

from __future__ import annotations

from typing import Any

import blake3
from common import JOB_KEY, Vector, data_hex, det, vector, vector_file, xof_bytes

from transferd.core.envelope import new_compressor, seal_chunk

PARTS = (
    b"id;date;acte\n" + b"1;2026-01-02;consultation\n" * 9,
    xof_bytes("stream chunk 2", 120),
    b"9;2026-03-04;radiographie\n" * 5,
)
OTHER = xof_bytes("stream other chunk", 120)
"""A chunk of another stream of the same job, as long as PARTS[1]."""


def _chunk(plaintext: bytes, label: str) -> dict[str, Any]:
    cid, blob = seal_chunk(JOB_KEY, plaintext, det(f"stream nonce {label}", 24), new_compressor(3))
    return {"chunk_id": cid.hex(), "plain_len": len(plaintext), "blob": blob.hex()}


def _end(content: bytes, size: int | None = None) -> dict[str, Any]:
    return {"size": len(content) if size is None else size,
            "blake3": blake3.blake3(content).hexdigest()}  # fmt: skip


def generate() -> dict[str, Any]:
    chunks = [_chunk(p, str(i)) for i, p in enumerate(PARTS)]
    whole = b"".join(PARTS)
    integrity = "integrity failure"
    vectors: list[Vector] = [
        vector("three_chunks", "a stream of three chunks (zstd, stored, zstd) and its end",
               job_key=JOB_KEY.key.hex(), chunks=chunks, end=_end(whole),
               plaintext=data_hex(whole)),
        vector("end_size_not_chunk_sum", "the end record says one byte more than the chunks' "
               "plain lengths: caught from the catalog alone, before any chunk is opened "
               "(SPEC 13.3 step 5), which is why no vector can reach the size check of 13.5",
               integrity, ("Bounds",), job_key=JOB_KEY.key.hex(), chunks=chunks,
               end=_end(whole, len(whole) + 1)),
        vector("blake3_mismatch", "every chunk authentic and the size right, but the end record "
               "holds the BLAKE3 of other content", integrity, ("Tampered",),
               job_key=JOB_KEY.key.hex(), chunks=chunks, end=_end(whole[::-1])),
        vector("chunks_reordered", "the same three authentic chunks, the last two swapped: the "
               "sizes add up, only the stream's BLAKE3 tells", integrity, ("Tampered",),
               job_key=JOB_KEY.key.hex(), chunks=[chunks[0], chunks[2], chunks[1]],
               end=_end(whole)),
        vector("chunk_of_another_stream", "the second chunk replaced by an authentic chunk of "
               "another stream, of the same length", integrity, ("Tampered",),
               job_key=JOB_KEY.key.hex(), chunks=[chunks[0], _chunk(OTHER, "other"), chunks[2]],
               end=_end(whole)),
    ]  # fmt: skip
    return vector_file(
        "stream",
        "The chunks of one stream, in order, and its end record. Apply: the chunks' plain_len "
        "must sum to end.size (SPEC 13.3 step 5); open each chunk as envelope.json does "
        "(SPEC 13.4) and release it; then the BLAKE3 of everything released must be end.blake3 "
        "(SPEC 13.5). Valid: the released bytes are plaintext.",
        vectors,
    )
