"""The encrypted catalog: what was copied, and where each chunk of it lies.

File and table names can themselves be sensitive, so the catalog (source identity, tree, sizes,
modes, plaintext hashes, chunk references) is sealed with a subkey of the job key. It is a stream
of canonical-JSON records cut into segments of at most 4 MiB, each zstd-compressed, sealed and
stored as an object named in the signed manifest:

    segment = "TDCS" || u8(1) || nonce(24) || AEAD(K_catalog, nonce, ad, zstd(records))
    ad      = "transferd v1 catalog" || u8(1) || u32(segment index)

A file is a `file` record, then `chunks` records, then an `end` record with its size and BLAKE3;
the split keeps each record small whatever the file's size.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import nacl.bindings
import nacl.exceptions
import zstandard

from transferd.core import canonical, zstdframe
from transferd.core.constants import (
    AD_CATALOG,
    BLOB_MIN,
    BLOB_OVERHEAD,
    CATALOG_CHUNKS_PER_RECORD,
    CATALOG_MAGIC,
    CATALOG_SEGMENT_MAX,
    CHUNK_ID_SIZE,
    CHUNK_MAX,
    FORMAT_VERSION,
    NONCE_SIZE,
    TAG_SIZE,
)
from transferd.core.jobkey import b64decode_strict
from transferd.errors import AuthenticationError, FormatError, UnsupportedVersionError

_PREFIX = CATALOG_MAGIC + bytes([FORMAT_VERSION])
RECORD_TYPES = frozenset({"source", "dir", "symlink", "file", "table", "chunks", "end", "totals"})


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """One chunk of a stream: which pack (index in the object lists), where, and its id."""

    pack_index: int
    offset: int
    blob_len: int
    plain_len: int
    chunk_id: bytes

    def to_json(self) -> list[object]:
        return [self.pack_index, self.offset, self.blob_len, self.plain_len, self.chunk_id.hex()]

    @classmethod
    def from_json(cls, value: object) -> ChunkRef:
        if not isinstance(value, list) or len(value) != 5:
            raise FormatError("chunk reference must be [pack, offset, blob_len, plain_len, id]")
        pack, offset, blob_len, plain_len, cid = value
        for n in (pack, offset, blob_len, plain_len):
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise FormatError("chunk reference numbers must be non-negative integers")
        if plain_len > CHUNK_MAX or plain_len == 0:
            raise FormatError(f"chunk reference has plain length {plain_len}, out of bounds")
        if not BLOB_MIN <= blob_len <= plain_len + BLOB_OVERHEAD:
            raise FormatError(
                f"chunk reference has blob length {blob_len}, impossible for plain length "
                f"{plain_len} ({BLOB_MIN} to {plain_len + BLOB_OVERHEAD})"
            )
        if not isinstance(cid, str) or len(cid) != 2 * CHUNK_ID_SIZE or cid != cid.lower():
            raise FormatError("chunk id must be 64 lowercase hex digits")
        try:
            return cls(pack, offset, blob_len, plain_len, bytes.fromhex(cid))
        except ValueError:
            raise FormatError("chunk id is not hex") from None


# --- record helpers -------------------------------------------------------------------------


def name_fields(key: str, raw: bytes) -> dict[str, str]:
    """{key: text} for a UTF-8 name, else {key_b64: base64} so any byte string survives."""
    try:
        return {key: raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {key + "_b64": base64.b64encode(raw).decode()}


def name_from(record: dict[str, Any], key: str) -> bytes:
    """The raw bytes of a name written by name_fields, which has one form per name.

    A UTF-8 name given as base64, or a name given both ways, is refused: two encodings of one
    path would let two records name one file while their texts differ.
    """
    if key in record:
        value = record[key]
        if not isinstance(value, str):
            raise FormatError(f"{key} must be a string")
        if key + "_b64" in record:
            raise FormatError(f"record has both {key} and {key}_b64")
        return value.encode("utf-8")
    if key + "_b64" in record:
        raw = b64decode_strict(record[key + "_b64"], key + "_b64")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
        raise FormatError(f"{key}_b64 holds a UTF-8 name, which must be written as {key}")
    raise FormatError(f"record lacks {key}")


def safe_path(record: dict[str, Any]) -> bytes:
    """The record's relative path, refusing anything that could land outside a restore target."""
    path = name_from(record, "path")
    if not path or path.startswith(b"/") or b"\x00" in path:
        raise FormatError(f"unsafe path {path!r} in catalog")
    parts = path.split(b"/")
    if any(p in (b"", b".", b"..") for p in parts):
        raise FormatError(f"unsafe path {path!r} in catalog")
    return path


def chunk_records(refs: list[ChunkRef]) -> Iterator[dict[str, Any]]:
    for start in range(0, len(refs), CATALOG_CHUNKS_PER_RECORD):
        part = refs[start : start + CATALOG_CHUNKS_PER_RECORD]
        yield {"t": "chunks", "c": [r.to_json() for r in part]}


def record_chunks(record: dict[str, Any]) -> list[ChunkRef]:
    refs = record.get("c")
    if not isinstance(refs, list) or not 1 <= len(refs) <= CATALOG_CHUNKS_PER_RECORD:
        raise FormatError("chunks record must hold a list of 1 to 4096 references")
    return [ChunkRef.from_json(r) for r in refs]


# --- segments ------------------------------------------------------------------------------


def _ad(index: int) -> bytes:
    return AD_CATALOG + bytes([FORMAT_VERSION]) + struct.pack(">I", index)


def seal_segment(catalog_key: bytes, index: int, records: bytes, nonce: bytes) -> bytes:
    """One sealed catalog segment holding ``records`` (canonical JSON lines)."""
    compressed = zstandard.ZstdCompressor(level=3, write_content_size=True).compress(records)
    sealed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        compressed, _ad(index), nonce, catalog_key
    )
    return _PREFIX + nonce + sealed


def open_segment(catalog_key: bytes, index: int, data: bytes | memoryview) -> list[dict[str, Any]]:
    """The records of catalog segment number ``index``; refuses a segment moved to another slot."""
    if len(data) < len(_PREFIX) + NONCE_SIZE + TAG_SIZE or bytes(data[:4]) != CATALOG_MAGIC:
        raise FormatError("object is not a transferd catalog segment (bad magic)")
    if data[4] != FORMAT_VERSION:
        raise UnsupportedVersionError(data[4], "catalog segment")
    raw = bytes(data)
    nonce = raw[5 : 5 + NONCE_SIZE]
    try:
        compressed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            raw[5 + NONCE_SIZE :], _ad(index), nonce, catalog_key
        )
    except nacl.exceptions.CryptoError:
        raise AuthenticationError(f"catalog segment {index} failed authentication") from None
    what = f"catalog segment {index}"
    size = zstdframe.declared_size(compressed, what)
    if size > CATALOG_SEGMENT_MAX:
        raise FormatError(f"{what} declares {size} bytes of records, above the limit")
    return parse_records(zstdframe.inflate(compressed, size, what), what)


def parse_records(records: bytes, what: str) -> list[dict[str, Any]]:
    if not records:
        raise FormatError(f"{what} holds no record")
    if not records.endswith(b"\n"):
        raise FormatError(f"{what} does not end with a newline")
    out: list[dict[str, Any]] = []
    for n, line in enumerate(records.split(b"\n")[:-1]):
        value = canonical.loads(line, f"{what} record {n}")
        if not isinstance(value, dict) or value.get("t") not in RECORD_TYPES:
            raise FormatError(f"{what} record {n} has no known type")
        out.append(value)
    return out


class CatalogWriter:
    """Collects records and cuts them into segments of at most CATALOG_SEGMENT_MAX bytes.

    ``add`` returns a segment's plaintext when one is full; the caller seals it (it owns the
    nonces) with ``seal_segment(key, index, plaintext, nonce)``.
    """

    def __init__(self) -> None:
        self._lines: list[bytes] = []
        self._size = 0
        self.next_index = 0

    def add(self, record: dict[str, Any]) -> tuple[int, bytes] | None:
        if record.get("t") not in RECORD_TYPES:
            raise ValueError(f"unknown record type {record.get('t')!r}")
        line = canonical.dumps(record, checked=False) + b"\n"
        if len(line) > CATALOG_SEGMENT_MAX:
            raise ValueError(f"a {record['t']} record of {len(line)} bytes exceeds a segment")
        full = None
        if self._size + len(line) > CATALOG_SEGMENT_MAX and self._lines:
            full = self._take()
        self._lines.append(line)
        self._size += len(line)
        return full

    def finish(self) -> tuple[int, bytes] | None:
        return self._take() if self._lines else None

    def _take(self) -> tuple[int, bytes]:
        data = b"".join(self._lines)
        self._lines, self._size = [], 0
        index, self.next_index = self.next_index, self.next_index + 1
        return index, data
