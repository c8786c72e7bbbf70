"""chunk_ids.json (keyed BLAKE3 chunk ids, plain BLAKE3 stream hashes) and chunking.json (cuts)."""

from __future__ import annotations

from typing import Any

import blake3
from common import (
    JOB_KEY,
    Vector,
    data_hex,
    data_repeat,
    data_value,
    data_xof,
    det,
    vector,
    vector_file,
    xof_bytes,
)

from transferd.core.chunking import Chunker, cut
from transferd.core.constants import CHUNK_MAX, CHUNK_MIN

# --- chunk ids ------------------------------------------------------------------------------

# Lengths at BLAKE3's boundaries: one block (64), one chunk (1024), a parent node, a tree that is
# not a power of two, and CHUNK_MIN. Up to 64 bytes the plaintext is given as hex.
_ID_LENGTHS = (1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 3072, 5121, CHUNK_MIN)


def _plaintext(length: int) -> dict[str, Any]:
    seed = f"chunk id {length}"
    return data_hex(xof_bytes(seed, length)) if length <= 64 else data_xof(seed, length)


def _chunk_id_vector(name: str, comment: str, spec: dict[str, Any], key: bytes | None = None,
                     expect: str = "success", flags: tuple[str, ...] = ()) -> Vector:  # fmt: skip
    """chunk_id is BLAKE3 keyed with ``key`` (K_id unless a vector says otherwise)."""
    plaintext = data_value(spec)
    digest = (
        blake3.blake3(plaintext).digest()
        if key == b""
        else blake3.blake3(plaintext, key=key or JOB_KEY.chunk_id_key).digest()
    )
    return vector(name, comment, expect, flags, job_key=JOB_KEY.key.hex(),
                  chunk_id_key=JOB_KEY.chunk_id_key.hex(), plaintext=spec, chunk_id=digest.hex(),
                  blake3=blake3.blake3(plaintext).hexdigest())  # fmt: skip


def chunk_id_vectors() -> list[Vector]:
    vectors = [
        _chunk_id_vector("empty", "the empty string: no stream has an empty chunk, but an empty "
                         "file's end record carries its plain BLAKE3", data_hex(b""))
    ]  # fmt: skip
    for length in _ID_LENGTHS:
        flags = ("Boundary",) if length != 1 else ()
        vectors.append(
            _chunk_id_vector(f"length_{length}", f"{length} bytes", _plaintext(length), flags=flags)
        )
    pt = _plaintext(1025)
    failure = "integrity failure"
    vectors += [
        _chunk_id_vector("unkeyed_blake3", "chunk_id is the plain BLAKE3, not keyed with K_id",
                         pt, b"", failure, ("WrongKey",)),
        _chunk_id_vector("keyed_with_job_key", "chunk_id keyed with K_job instead of K_id", pt,
                         JOB_KEY.key, failure, ("WrongKey",)),
        _chunk_id_vector("keyed_with_chunk_seal_key", "chunk_id keyed with K_chunk", pt,
                         JOB_KEY.chunk_key, failure, ("WrongKey",)),
    ]  # fmt: skip
    return vectors


def generate_chunk_ids() -> dict[str, Any]:
    return vector_file(
        "chunk_ids",
        "chunk_id = BLAKE3 keyed with K_id = KDF(K_job, 'transferd v1 chunk id') over the "
        "plaintext; blake3 = plain BLAKE3 of the same bytes (as in a catalog end record). A "
        "reader that finds another id than the catalog names MUST fail with an integrity failure.",
        chunk_id_vectors(),
    )


# --- chunking -------------------------------------------------------------------------------


def _pieces(total: int, label: str) -> list[int]:
    """Piece sizes from 1 byte to 2 MiB, drawn from ``det(label)``, summing to ``total``."""
    stream = det(label, 4 * 512)
    sizes: list[int] = []
    left, i = total, 0
    while left:
        word = int.from_bytes(stream[4 * i : 4 * i + 4], "big")
        size = min(left, 1 + word % (1 << (1 + word % 21)))
        sizes.append(size)
        left -= size
        i += 1
    return sizes


def _chunking_vector(name: str, comment: str, spec: dict[str, Any],
                     feed: list[int] | None = None) -> Vector:  # fmt: skip
    data = data_value(spec)
    lengths = [len(c) for c in cut(data)]
    if feed is not None:
        chunker, fed, at = Chunker(), [], 0
        for size in feed:
            fed += [len(c) for c in chunker.feed(data[at : at + size])]
            at += size
        fed += [len(c) for c in chunker.finish()]
        if fed != lengths or at != len(data):
            raise RuntimeError(f"{name}: fed in pieces, the stream cuts differently")
    flags = ("Streaming",) if feed is not None else ()
    return vector(name, comment, flags=flags, input=spec, feed=feed, chunk_lengths=lengths)


def chunking_vectors() -> list[Vector]:
    three = data_xof("chunking random 3 MiB", 3 * 1024 * 1024)
    eight = data_xof("chunking random 8 MiB", 8 * 1024 * 1024)
    seven = [len(c) for c in cut(data_value(eight))]
    aligned = [*seven[:2], seven[2] + seven[3], *seven[4:]]
    return [
        _chunking_vector("empty", "an empty stream has no chunks", data_hex(b"")),
        _chunking_vector("one_byte", "one byte is one chunk", data_hex(b"\x00")),
        _chunking_vector("below_min", "shorter than MIN: one chunk",
                         data_xof("chunking below min", 100_000)),
        _chunking_vector("exactly_min", "MIN bytes: one chunk",
                         data_xof("chunking exactly min", CHUNK_MIN)),
        _chunking_vector("random_3_mib", "random bytes: cuts near the 1 MiB average", three),
        _chunking_vector("random_8_mib", "random bytes, 8 MiB", eight),
        _chunking_vector("zeros_9_mib", "no cut point matches in zeros: forced cuts at MAX",
                         data_repeat(b"\x00", 2 * CHUNK_MAX + 1024 * 1024)),
        _chunking_vector("text_2_mib", "a repeated 37-byte sentence",
                         data_repeat(b"transferd copies health data safely. ", 2 * 1024 * 1024)),
        _chunking_vector("random_3_mib_one_byte_then_rest", "fed as one byte, then the rest",
                         three, [1, len(data_value(three)) - 1]),
        _chunking_vector("random_8_mib_random_pieces", "fed in pieces of 1 byte to 2 MiB",
                         eight, _pieces(8 * 1024 * 1024, "chunking pieces")),
        _chunking_vector("random_8_mib_pieces_at_cut_points", "fed in pieces that end exactly "
                         "at cut points (one piece spans two chunks)", eight, aligned),
        _chunking_vector("zeros_9_mib_max_pieces", "fed in MAX-sized pieces",
                         data_repeat(b"\x00", 2 * CHUNK_MAX + 1024 * 1024),
                         [CHUNK_MAX, CHUNK_MAX, 1024 * 1024]),
    ]  # fmt: skip


def generate_chunking() -> dict[str, Any]:
    return vector_file(
        "chunking",
        "FastCDC 2020 cut points: MIN 262144, AVG 1048576, MAX 4194304, normalized chunking "
        "level 1, gear table of destor (seed 0). chunk_lengths lists the chunks in order; feed, "
        "when present, lists the sizes of the pieces the stream is fed in, which MUST NOT change "
        "the cuts.",
        chunking_vectors(),
    )
