"""object_list.json: the public list of a job's packs, by SHA-256 and size."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from common import Vector, det, flip_bit, vector, vector_file

from transferd.core.objectlist import ObjectRef, encode_segment

REFS = [
    ObjectRef(det("object list pack 1"), 16_777_421),
    ObjectRef(det("object list pack 2"), 16_780_003),
    ObjectRef(det("object list pack 3"), 1_234),
]


def _vector(name: str, comment: str, segment: bytes, expect: str = "success",
            flags: tuple[str, ...] = (), **extra: Any) -> Vector:  # fmt: skip
    sha = extra.pop("sha256", hashlib.sha256(segment).hexdigest())
    return vector(name, comment, expect, flags, segment=segment.hex(), sha256=sha, **extra)


def _valid(name: str, comment: str, refs: list[ObjectRef]) -> Vector:
    return _vector(name, comment, encode_segment(refs), flags=("Deterministic",),
                   entries=[r.to_json() for r in refs])  # fmt: skip


def generate() -> dict[str, Any]:
    good = encode_segment(REFS)
    fmt = "format failure"
    vectors = [
        _valid("three_packs", "three packs, in the order they were sealed", REFS),
        _valid("size_above_4_gib", "sizes are u64", [ObjectRef(det("object list big"), 1 << 33)]),
        _vector("bad_magic", "magic TDOX", b"TDOX" + good[4:], fmt, ("Malformed",)),
        _vector("version_2", "version byte 2", good[:4] + b"\x02" + good[5:],
                "unsupported version", ("UnknownVersion",)),
        _vector("truncated_count", "magic, version and two bytes of the count", good[:7], fmt,
                ("Bounds",)),
        _vector("count_above_entries", "the count says 4, three entries follow",
                good[:5] + struct.pack(">I", 4) + good[9:], fmt, ("Bounds",)),
        _vector("count_below_entries", "the count says 2, three entries follow",
                good[:5] + struct.pack(">I", 2) + good[9:], fmt, ("Bounds",)),
        _vector("partial_entry", "the last entry cut short by one byte", good[:-1], fmt,
                ("Bounds",)),
        _vector("empty_segment", "a count of 0 and no entry: a segment lists at least one pack "
                "(a job with no pack has no segment)", good[:5] + struct.pack(">I", 0), fmt,
                ("Bounds",)),
        _vector("pack_listed_twice", "the first pack listed again as a fourth entry",
                good[:5] + struct.pack(">I", 4) + good[9:] + good[9 : 9 + 40], fmt,
                ("Malformed",)),
        _vector("count_above_limit", "the count says 65537 (the limit is 65536)",
                good[:5] + struct.pack(">I", 65537), fmt, ("Bounds",)),
        _vector("digest_bit_flipped", "one bit of a pack's SHA-256 flipped, under the list's "
                "original name", flip_bit(good, 9 + 40 + 3), "integrity failure",
                ("NameMismatch", "Tampered"), sha256=hashlib.sha256(good).hexdigest()),
        _vector("size_bit_flipped", "one bit of a pack's size flipped, under the original name",
                flip_bit(good, 9 + 32 + 7), "integrity failure", ("NameMismatch", "Tampered"),
                sha256=hashlib.sha256(good).hexdigest()),
    ]  # fmt: skip
    return vector_file(
        "object_list",
        "segment = 'TDOL' || 0x01 || u32(n) || n x (sha256(32) || u64(size)); n <= 65536. The "
        "object list is public: a verifier without any key checks SHA-256(segment) = sha256 "
        "first, then parses it. Encode (Deterministic vectors): encode(entries) = segment.",
        vectors,
    )
