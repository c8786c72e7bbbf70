"""The public list of a job's packs: what an auditor without the key checks, object by object.

    segment = "TDOL" || u8(1) || u32(n) || n x ( sha256(32) || u64(size) )

Segments of at most 65,536 entries are themselves stored objects named by their SHA-256 and
listed in the signed manifest, so a verifier streams a job of any size in bounded memory.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from transferd.core.constants import (
    FORMAT_VERSION,
    OBJECT_LIST_ENTRY_SIZE,
    OBJECT_LIST_MAGIC,
    OBJECT_LIST_MAX_ENTRIES,
)
from transferd.errors import FormatError, UnsupportedVersionError

_PREFIX = OBJECT_LIST_MAGIC + bytes([FORMAT_VERSION])
_ENTRY = struct.Struct(">32sQ")


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """A stored object as the manifest names it: its SHA-256 and its size in bytes."""

    sha256: bytes
    size: int

    @property
    def name(self) -> str:
        return self.sha256.hex()

    def to_json(self) -> dict[str, object]:
        return {"sha256": self.name, "size": self.size}

    @classmethod
    def from_json(cls, value: object, what: str) -> ObjectRef:
        if not isinstance(value, dict) or set(value) != {"sha256", "size"}:
            raise FormatError(f"{what} must have exactly sha256 and size")
        digest, size = value["sha256"], value["size"]
        if not isinstance(digest, str) or len(digest) != 64 or digest != digest.lower():
            raise FormatError(f"{what} sha256 must be 64 lowercase hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise FormatError(f"{what} size must be a non-negative integer")
        try:
            return cls(bytes.fromhex(digest), size)
        except ValueError:
            raise FormatError(f"{what} sha256 is not hex") from None


def encode_segment(refs: list[ObjectRef]) -> bytes:
    if not 1 <= len(refs) <= OBJECT_LIST_MAX_ENTRIES:
        raise ValueError(f"an object-list segment holds 1 to 65536 packs, not {len(refs)}")
    if len({r.sha256 for r in refs}) != len(refs):
        raise ValueError("an object-list segment names a pack twice")
    return b"".join(
        [_PREFIX, struct.pack(">I", len(refs)), *(_ENTRY.pack(r.sha256, r.size) for r in refs)]
    )


def decode_segment(data: bytes | memoryview) -> list[ObjectRef]:
    if len(data) < len(_PREFIX) + 4 or bytes(data[:4]) != OBJECT_LIST_MAGIC:
        raise FormatError("object is not a transferd object list (bad magic)")
    if data[4] != FORMAT_VERSION:
        raise UnsupportedVersionError(data[4], "object list")
    (count,) = struct.unpack(">I", bytes(data[5:9]))
    if not 1 <= count <= OBJECT_LIST_MAX_ENTRIES:
        raise FormatError(f"object list claims {count} entries, not 1 to {OBJECT_LIST_MAX_ENTRIES}")
    if len(data) != 9 + count * OBJECT_LIST_ENTRY_SIZE:
        raise FormatError("object list length does not match its entry count")
    refs = [ObjectRef(d, s) for d, s in _ENTRY.iter_unpack(bytes(data[9:]))]
    if len({r.sha256 for r in refs}) != count:
        raise FormatError("object list names a pack twice")
    return refs


def segments(refs: list[ObjectRef]) -> Iterator[list[ObjectRef]]:
    """Split a list of packs into segment-sized runs, in order."""
    for start in range(0, len(refs), OBJECT_LIST_MAX_ENTRIES):
        yield refs[start : start + OBJECT_LIST_MAX_ENTRIES]
