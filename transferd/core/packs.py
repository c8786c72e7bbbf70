"""Packs: the stored objects that hold sealed chunks (restic's pack files are the model).

Grouping chunks into ~16 MiB objects turns 20,000 small files into a handful of uploads, and hides
each chunk's size from the storage host. The encrypted header at the end lists the pack's chunks,
so a key holder can rebuild the index from the packs alone if every catalog were lost.

    pack = "TDPK" || u8(1) || blob_1 || … || blob_n || header_blob || u32(len(header_blob))
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions

from transferd.core.constants import (
    AD_PACK_HEADER,
    BLOB_MIN,
    BLOB_OVERHEAD,
    CHUNK_ID_SIZE,
    CHUNK_MAX,
    FORMAT_VERSION,
    NONCE_SIZE,
    PACK_HEADER_ENTRY_SIZE,
    PACK_MAGIC,
    PACK_MAX_CHUNKS,
    PACK_MAX_SIZE,
    PACK_TARGET,
    PACK_TARGET_MAX,
    TAG_SIZE,
)
from transferd.errors import AuthenticationError, FormatError, UnsupportedVersionError

PACK_PREFIX = PACK_MAGIC + bytes([FORMAT_VERSION])
PACK_PREFIX_SIZE = len(PACK_PREFIX)
_TRAILER = struct.Struct(">I")
_ENTRY = struct.Struct(f">{CHUNK_ID_SIZE}sII")
_HEADER_AD = AD_PACK_HEADER + bytes([FORMAT_VERSION])
MIN_HEADER_BLOB = NONCE_SIZE + 4 + PACK_HEADER_ENTRY_SIZE + TAG_SIZE
MAX_HEADER_BLOB = NONCE_SIZE + 4 + PACK_MAX_CHUNKS * PACK_HEADER_ENTRY_SIZE + TAG_SIZE


@dataclass(frozen=True, slots=True)
class PackEntry:
    """Where one sealed chunk lies inside a pack."""

    chunk_id: bytes
    offset: int
    blob_len: int
    plain_len: int


class PackBuilder:
    """Accumulates sealed blobs until the pack is full, then emits its bytes."""

    def __init__(self, target: int = PACK_TARGET) -> None:
        if not 1 <= target <= PACK_TARGET_MAX:
            raise ValueError(f"a pack target is 1 to {PACK_TARGET_MAX} bytes, not {target}")
        self.target = target
        """Bytes of blobs at which the pack is full: PACK_TARGET unless the sender chose another."""
        self._blobs: list[bytes | bytearray] = []
        self.entries: list[PackEntry] = []
        self.size = PACK_PREFIX_SIZE
        """Bytes the pack holds so far (prefix and blobs, before the header)."""

    def add(self, chunk_id: bytes, blob: bytes | bytearray, plain_len: int) -> PackEntry:
        entry = PackEntry(chunk_id, self.size, len(blob), plain_len)
        self._blobs.append(blob)
        self.entries.append(entry)
        self.size += len(blob)
        return entry

    def is_full(self) -> bool:
        return self.size - PACK_PREFIX_SIZE >= self.target or len(self.entries) >= PACK_MAX_CHUNKS

    def __len__(self) -> int:
        return len(self.entries)

    def finish(self, pack_header_key: bytes, nonce: bytes) -> bytes:
        """The whole pack: prefix, blobs, sealed header, header length."""
        if not self.entries:
            raise ValueError("a pack holds at least one chunk (SPEC 8)")
        header = encode_header(self.entries)
        sealed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            header, _HEADER_AD, nonce, pack_header_key
        )
        header_blob = nonce + sealed
        blobs, self._blobs = self._blobs, []  # the blobs live on only in the pack
        return b"".join([PACK_PREFIX, *blobs, header_blob, _TRAILER.pack(len(header_blob))])


def encode_header(entries: list[PackEntry]) -> bytes:
    parts = [struct.pack(">I", len(entries))]
    parts += [_ENTRY.pack(e.chunk_id, e.blob_len, e.plain_len) for e in entries]
    return b"".join(parts)


def check_prefix(data: bytes | memoryview) -> None:
    """Refuse an object that is not a v1 pack, before reading anything else from it."""
    if len(data) < PACK_PREFIX_SIZE or bytes(data[:4]) != PACK_MAGIC:
        raise FormatError("object is not a transferd pack (bad magic)")
    if data[4] != FORMAT_VERSION:
        raise UnsupportedVersionError(data[4], "pack")


def check_pack_size(size: int) -> None:
    """Refuse a pack above PACK_MAX_SIZE from its listed size, before fetching it (SPEC 13.6)."""
    if size > PACK_MAX_SIZE:
        raise FormatError(f"pack of {size} bytes exceeds the {PACK_MAX_SIZE}-byte limit")


def check_pack_index(index: int, count: int) -> None:
    """Refuse a chunk reference naming a pack past the last one the object lists name."""
    if not 0 <= index < count:
        raise FormatError(f"catalog names pack {index}, but the job has {count} packs")


def check_blob_location(offset: int, blob_len: int, pack_size: int) -> None:
    """Refuse, before fetching anything, a blob that cannot lie among a pack's blobs: it starts
    after the prefix and ends before the smallest header blob and its trailer (SPEC 13.4)."""
    if offset < PACK_PREFIX_SIZE or offset + blob_len > pack_size - MIN_HEADER_BLOB - 4:
        raise FormatError(
            f"bytes {offset} to {offset + blob_len} are not among the blobs of a pack of "
            f"{pack_size} bytes"
        )


def header_length(tail: bytes | memoryview, pack_size: int) -> int:
    """The header blob's length from the pack's last four bytes, bounded before it is fetched."""
    if len(tail) < 4:
        raise FormatError("pack is truncated: no header length")
    length: int = _TRAILER.unpack(bytes(tail[-4:]))[0]
    if not MIN_HEADER_BLOB <= length <= MAX_HEADER_BLOB:
        raise FormatError(f"pack header length {length} is out of bounds")
    if PACK_PREFIX_SIZE + length + 4 > pack_size:
        raise FormatError("pack is truncated: header longer than the pack")
    return length


def open_header(
    pack_header_key: bytes, header_blob: bytes | memoryview, pack_size: int
) -> list[PackEntry]:
    """The entries of a pack's sealed header, with offsets checked against the pack's size."""
    blob = bytes(header_blob)
    try:
        header = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            blob[NONCE_SIZE:], _HEADER_AD, blob[:NONCE_SIZE], pack_header_key
        )
    except nacl.exceptions.CryptoError:
        raise AuthenticationError("pack header failed authentication") from None
    if len(header) < 4:
        raise FormatError("pack header is truncated")
    (count,) = struct.unpack(">I", header[:4])
    if not 1 <= count <= PACK_MAX_CHUNKS or len(header) != 4 + count * PACK_HEADER_ENTRY_SIZE:
        raise FormatError(f"pack header of {len(header)} bytes lists {count} entries")
    entries: list[PackEntry] = []
    offset = PACK_PREFIX_SIZE
    end_of_blobs = pack_size - len(blob) - 4
    for i in range(count):
        cid, blob_len, plain_len = _ENTRY.unpack_from(header, 4 + i * PACK_HEADER_ENTRY_SIZE)
        if not (1 <= plain_len <= CHUNK_MAX and BLOB_MIN <= blob_len <= plain_len + BLOB_OVERHEAD):
            raise FormatError(f"pack header entry {i} has impossible sizes")
        entries.append(PackEntry(cid, offset, blob_len, plain_len))
        offset += blob_len
    if offset != end_of_blobs:
        raise FormatError("pack header does not account for every byte of the pack")
    return entries


def parse_pack(pack_header_key: bytes, data: bytes | memoryview) -> list[PackEntry]:
    """Every entry of a whole pack held in memory (at most PACK_MAX_SIZE bytes)."""
    check_pack_size(len(data))
    check_prefix(data)
    length = header_length(data, len(data))
    header_blob = memoryview(data)[len(data) - 4 - length : len(data) - 4]
    return open_header(pack_header_key, header_blob, len(data))


def object_name(data: bytes | memoryview) -> str:
    """Every stored object is named by the lowercase hex SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()
