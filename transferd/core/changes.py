"""Change segments: a live database's changes after the snapshot, sealed like the catalog.

A follow job (``send --follow``, protocol/SPEC.md §11.5, POSTGRESQL.md §8) publishes, after its
snapshot, one manifest per batch of changes. Each manifest names the snapshot's catalog segments
unchanged and lists the *change segments* in a public *change list*::

    change list = "TDCL" || u8(1) || u32(n) || n x entry                 1 <= n <= 65536
    entry       = sha256(32) || u64(size) || u64(start_lsn) || u64(end_lsn) || u8(flags)

    change segment = "TDCG" || u8(1) || nonce(24) || AEAD(K_catalog, nonce, ad, zstd(records))
    ad             = "transferd v1 change segment" || u8(1) || u64(start_lsn) || u64(end_lsn)

The list is public, like the object lists: a verifier without the key sees that the segments
cover one unbroken range of WAL (each starts where the one before ended) and hashes each one.
The segment is encrypted, like the catalog: its records say how many transactions it holds and
how many rows of which table they change, and where the chunks of its ``pgoutput-1`` stream are
(core/pgoutput.py). The associated data binds a segment to its public range, so a segment served
in another slot of the list fails authentication.

Records of a segment, canonical JSON lines::

    {"t":"changes","format":"pgoutput-1","start_lsn":"0/19A0160","end_lsn":"0/19A4F28",
     "transactions":2,"tables":[["public","acct",1,2,0,0]]}
    {"t":"chunks","c":[[pack, offset, blob_len, plain_len, "chunk id"]]}      0 or more
    {"t":"end","size":…,"blake3":"…"}
    {"t":"cutover","sequences":3}          the last segment of the job only (flag 0x01)
    {"t":"chunks",…} {"t":"end",…}         its stream: sequences' setval lines at the cut-over
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import nacl.bindings
import nacl.exceptions
import zstandard

from transferd.core import canonical, zstdframe
from transferd.core.catalog import ChunkRef, record_chunks
from transferd.core.constants import CATALOG_SEGMENT_MAX, FORMAT_VERSION, NONCE_SIZE, TAG_SIZE
from transferd.core.objectlist import ObjectRef
from transferd.core.pgoutput import StreamSummary, lsn_text, parse_lsn
from transferd.errors import (
    AuthenticationError,
    FormatError,
    IntegrityError,
    UnsupportedVersionError,
)

CHANGE_LIST_MAGIC = b"TDCL"
CHANGE_SEGMENT_MAGIC = b"TDCG"
CHANGE_LIST_MAX_ENTRIES = 65536
"""57 bytes an entry: a list stays under 3.6 MiB, read whole by a verifier."""
CHANGE_LIST_ENTRY_SIZE = 32 + 8 + 8 + 8 + 1
CHANGE_SEGMENT_MAX = CATALOG_SEGMENT_MAX
"""Record bytes of one change segment before compression, as for a catalog segment: a reader
holds one at a time. About 40,000 chunk references: one transaction of up to ~40 GiB of
pgoutput messages fits one segment."""
AD_CHANGES = b"transferd v1 change segment"
FLAG_CUTOVER = 0x01
"""The job's last segment: it carries the sequences read at the cut-over."""
STREAM_FORMAT = "pgoutput-1"

_LIST_PREFIX = CHANGE_LIST_MAGIC + bytes([FORMAT_VERSION])
_SEGMENT_PREFIX = CHANGE_SEGMENT_MAGIC + bytes([FORMAT_VERSION])
_ENTRY = struct.Struct(">32sQQQB")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_RECORD_TYPES = frozenset({"changes", "chunks", "end", "cutover"})
_HEADER = frozenset({"t", "format", "start_lsn", "end_lsn", "transactions", "tables"})


@dataclass(frozen=True, slots=True)
class ChangeRef:
    """One change segment as the public list names it."""

    sha256: bytes
    size: int
    start_lsn: int
    """Exclusive: every transaction in the segment ends after it (the previous segment's end)."""
    end_lsn: int
    """Inclusive: the end LSN of the segment's last transaction, or the cut-over point."""
    cutover: bool = False

    @property
    def name(self) -> str:
        return self.sha256.hex()

    @property
    def object(self) -> ObjectRef:
        return ObjectRef(self.sha256, self.size)

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.name, "size": self.size, "start_lsn": lsn_text(self.start_lsn),
                "end_lsn": lsn_text(self.end_lsn), "cutover": self.cutover}  # fmt: skip


# --- the public change list ------------------------------------------------------------------


def encode_list(refs: list[ChangeRef]) -> bytes:
    if not 1 <= len(refs) <= CHANGE_LIST_MAX_ENTRIES:
        raise ValueError(f"a change list holds 1 to 65536 segments, not {len(refs)}")
    ChainChecker().feed(refs)  # refuse to write what a reader refuses
    entries = (
        _ENTRY.pack(r.sha256, r.size, r.start_lsn, r.end_lsn, FLAG_CUTOVER if r.cutover else 0)
        for r in refs
    )
    return b"".join([_LIST_PREFIX, struct.pack(">I", len(refs)), *entries])


def decode_list(data: bytes | memoryview) -> list[ChangeRef]:
    """The entries of one change list, each range and the ranges' succession checked."""
    if len(data) < len(_LIST_PREFIX) + 4 or bytes(data[:4]) != CHANGE_LIST_MAGIC:
        raise FormatError("object is not a transferd change list (bad magic)")
    if data[4] != FORMAT_VERSION:
        raise UnsupportedVersionError(data[4], "change list")
    (count,) = struct.unpack(">I", bytes(data[5:9]))
    if not 1 <= count <= CHANGE_LIST_MAX_ENTRIES:
        raise FormatError(f"change list claims {count} entries, not 1 to {CHANGE_LIST_MAX_ENTRIES}")
    if len(data) != 9 + count * CHANGE_LIST_ENTRY_SIZE:
        raise FormatError("change list length does not match its entry count")
    refs = []
    for digest, size, start, end, flags in _ENTRY.iter_unpack(bytes(data[9:])):
        if flags & ~FLAG_CUTOVER:
            raise FormatError(f"change list entry has unknown flags 0x{flags:02x}")
        refs.append(ChangeRef(digest, size, start, end, bool(flags & FLAG_CUTOVER)))
    ChainChecker().feed(refs)
    return refs


class ChainChecker:
    """The succession of change segments across every list of a manifest, in order: each range
    non-empty and starting where the previous one ended, no segment named twice, and a cut-over
    segment only as the very last one."""

    def __init__(self) -> None:
        self.first_start: int | None = None
        self.last: ChangeRef | None = None
        self.count = 0
        self._names: set[bytes] = set()

    def feed(self, refs: Iterable[ChangeRef]) -> None:
        for ref in refs:
            if not ref.start_lsn < ref.end_lsn:
                raise FormatError(
                    f"change segment {ref.name} covers an empty range "
                    f"({lsn_text(ref.start_lsn)}, {lsn_text(ref.end_lsn)}]"
                )
            last = self.last
            if last is not None and last.cutover:
                raise FormatError("a change segment follows the cut-over segment")
            if last is not None and ref.start_lsn != last.end_lsn:
                fault = "a gap" if ref.start_lsn > last.end_lsn else "an overlap"
                raise FormatError(
                    f"change segment {ref.name} starts at {lsn_text(ref.start_lsn)}, the one "
                    f"before ends at {lsn_text(last.end_lsn)}: {fault} in the changes"
                )
            if ref.sha256 in self._names:
                raise FormatError(f"change segment {ref.name} is listed twice")
            self._names.add(ref.sha256)
            if self.first_start is None:
                self.first_start = ref.start_lsn
            self.last = ref
            self.count += 1


# --- the encrypted segment --------------------------------------------------------------------


def _ad(start_lsn: int, end_lsn: int) -> bytes:
    return AD_CHANGES + bytes([FORMAT_VERSION]) + struct.pack(">QQ", start_lsn, end_lsn)


def records_bytes(records: Iterable[dict[str, Any]]) -> bytes:
    data = b"".join(canonical.dumps(r) + b"\n" for r in records)
    if len(data) > CHANGE_SEGMENT_MAX:
        raise ValueError(f"change segment records of {len(data)} bytes exceed {CHANGE_SEGMENT_MAX}")
    return data


def seal_segment(catalog_key: bytes, start_lsn: int, end_lsn: int, records: bytes,
                 nonce: bytes) -> bytes:  # fmt: skip
    compressed = zstandard.ZstdCompressor(level=3, write_content_size=True).compress(records)
    sealed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        compressed, _ad(start_lsn, end_lsn), nonce, catalog_key
    )
    return _SEGMENT_PREFIX + nonce + sealed


def open_segment(catalog_key: bytes, ref: ChangeRef, data: bytes | memoryview) -> ChangeSegment:
    """The checked records of the change segment the list entry ``ref`` names (its bytes already
    checked against ``ref``'s size and SHA-256 by the caller)."""
    what = f"change segment {ref.name}"
    if (
        len(data) < len(_SEGMENT_PREFIX) + NONCE_SIZE + TAG_SIZE
        or bytes(data[:4]) != CHANGE_SEGMENT_MAGIC
    ):
        raise FormatError(f"{what} is not a transferd change segment (bad magic)")
    if data[4] != FORMAT_VERSION:
        raise UnsupportedVersionError(data[4], "change segment")
    raw = bytes(data)
    nonce = raw[5 : 5 + NONCE_SIZE]
    try:
        compressed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            raw[5 + NONCE_SIZE :], _ad(ref.start_lsn, ref.end_lsn), nonce, catalog_key
        )
    except nacl.exceptions.CryptoError:
        raise AuthenticationError(f"{what} failed authentication") from None
    size = zstdframe.declared_size(compressed, what)
    if size > CHANGE_SEGMENT_MAX:
        raise FormatError(f"{what} declares {size} bytes of records, above the limit")
    return check_segment(_parse(zstdframe.inflate(compressed, size, what), what), ref)


def _parse(data: bytes, what: str) -> list[dict[str, Any]]:
    if not data.endswith(b"\n"):
        raise FormatError(f"{what} does not end with a newline")
    out = []
    for n, line in enumerate(data.split(b"\n")[:-1]):
        value = canonical.loads(line, f"{what} record {n}")
        if not isinstance(value, dict) or value.get("t") not in _RECORD_TYPES:
            raise FormatError(f"{what} record {n} has no known type")
        out.append(value)
    return out


@dataclass(frozen=True)
class Stream:
    """One stream of a segment: its chunks, size and BLAKE3."""

    refs: tuple[ChunkRef, ...]
    size: int
    blake3: str
    setval_lines: int | None = None
    """The cut-over's sequences stream only: how many ``setval`` lines its ``cutover`` record
    says it holds, checked once the stream is read (``check_sequences``)."""


@dataclass(frozen=True)
class ChangeSegment:
    start_lsn: int
    end_lsn: int
    transactions: int
    tables: tuple[tuple[str, str, int, int, int, int], ...]
    """(schema, table, inserts, updates, deletes, truncates), in (schema, table) order."""
    changes: Stream
    cutover: Stream | None
    """The sequences' setval lines read at the cut-over (the job's last segment only)."""
    sequences: int = 0

    def table_counts(self) -> dict[tuple[str, str], list[int]]:
        return {(s, t): [i, u, d, x] for s, t, i, u, d, x in self.tables}


def check_segment(records: list[dict[str, Any]], ref: ChangeRef) -> ChangeSegment:
    """A segment's records against SPEC §11.5: the header, its stream, and the cut-over stream
    exactly when the list says the segment is the last."""
    what = f"change segment {ref.name}"
    if not records or records[0].get("t") != "changes":
        raise FormatError(f"{what} does not start with its changes record")
    head = records[0]
    if set(head) != _HEADER:
        raise FormatError(f"{what}: the changes record has other members than SPEC §11.5 lists")
    if head["format"] != STREAM_FORMAT:
        raise FormatError(f"{what} holds changes in format {head['format']!r}, not pgoutput-1")
    start, end = parse_lsn(head["start_lsn"], "start_lsn"), parse_lsn(head["end_lsn"], "end_lsn")
    if (start, end) != (ref.start_lsn, ref.end_lsn):
        raise FormatError(f"{what}: its records give another range than the change list")
    transactions = head["transactions"]
    if not _is_count(transactions):
        raise FormatError(f"{what}: transactions is not a non-negative integer")
    tables = _tables(head["tables"], what)
    rest = records[1:]
    changes, rest = _stream(rest, what, "changes")
    cutover: Stream | None = None
    sequences = 0
    if rest:
        marker = rest[0]
        if marker.get("t") != "cutover" or set(marker) != {"t", "sequences"}:
            raise FormatError(f"{what}: a {marker.get('t')} record after the changes' end")
        if not ref.cutover:
            raise FormatError(f"{what} has a cutover record but is not the list's cut-over segment")
        if not _is_count(marker["sequences"]):
            raise FormatError(f"{what}: sequences is not a non-negative integer")
        sequences = marker["sequences"]
        cutover, rest = _stream(rest[1:], what, "cut-over")
        cutover = Stream(cutover.refs, cutover.size, cutover.blake3, sequences)
        if rest:
            raise FormatError(f"{what}: a {rest[0].get('t')} record after the cut-over's end")
    elif ref.cutover:
        raise IntegrityError(f"{what} is the cut-over segment but holds no cutover record")
    if transactions == 0 and (tables or changes.size):
        raise FormatError(f"{what} holds no transaction but changes rows or has a stream")
    if transactions > 0 and not (tables and changes.size):
        raise FormatError(f"{what} holds {transactions} transactions but no change")
    if transactions == 0 and not ref.cutover:
        raise FormatError(f"{what} holds no transaction and is not the cut-over segment")
    return ChangeSegment(start, end, transactions, tables, changes, cutover, sequences)


def _stream(
    records: list[dict[str, Any]], what: str, name: str
) -> tuple[Stream, list[dict[str, Any]]]:
    refs: list[ChunkRef] = []
    for n, record in enumerate(records):
        kind = record.get("t")
        if kind == "chunks":
            if set(record) != {"t", "c"}:
                raise FormatError(f"{what}: a chunks record with other members than c")
            refs += record_chunks(record)
        elif kind == "end":
            if set(record) != {"t", "size", "blake3"}:
                raise FormatError(
                    f"{what}: the {name} end record has other members than size and blake3"
                )
            size, digest = record["size"], record["blake3"]
            if not _is_count(size) or not isinstance(digest, str) or not _HEX64.fullmatch(digest):
                raise FormatError(f"{what}: the {name} end record's size or blake3 is malformed")
            held = sum(r.plain_len for r in refs)
            if size != held:
                raise IntegrityError(
                    f"{what}: the {name} stream is {size} bytes by its end record, {held} by "
                    "its chunks"
                )
            return Stream(tuple(refs), size, digest), records[n + 1 :]
        else:
            raise FormatError(f"{what}: a {kind} record inside the {name} stream")
    raise IntegrityError(f"{what}: the {name} stream is cut short, its end record never comes")


def _tables(value: Any, what: str) -> tuple[tuple[str, str, int, int, int, int], ...]:
    if not isinstance(value, list):
        raise FormatError(f"{what}: tables is not a list")
    out: list[tuple[str, str, int, int, int, int]] = []
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) != 6
            or not all(isinstance(x, str) for x in item[:2])
            or not all(_is_count(x) for x in item[2:])
        ):
            raise FormatError(
                f"{what}: a table is [schema, name, inserts, updates, deletes, truncates]"
            )
        if not any(item[2:]):
            raise FormatError(f"{what}: table {item[0]}.{item[1]} is listed with no change")
        if out and (out[-1][0], out[-1][1]) >= (item[0], item[1]):
            raise FormatError(f"{what}: tables are not in strictly increasing (schema, name) order")
        out.append((item[0], item[1], item[2], item[3], item[4], item[5]))
    return tuple(out)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def header_record(start_lsn: int, end_lsn: int, transactions: int,
                  counts: dict[tuple[str, str], list[int]]) -> dict[str, Any]:  # fmt: skip
    """The first record of a segment, from the light pass's counts."""
    tables = [[s, t, *c] for (s, t), c in sorted(counts.items()) if any(c)]
    return {
        "t": "changes",
        "format": STREAM_FORMAT,
        "start_lsn": lsn_text(start_lsn),
        "end_lsn": lsn_text(end_lsn),
        "transactions": transactions,
        "tables": tables,
    }


def check_counts(summary: StreamSummary, transactions: int,
                 tables: Iterable[Iterable[Any]]) -> None:  # fmt: skip
    """A stream's transactions and per-table counts (the light pass) against its header."""
    if summary.transactions != transactions:
        raise IntegrityError(
            f"change stream holds {summary.transactions} transactions, its header says "
            f"{transactions}"
        )
    held = sorted([s, t, *c] for (s, t), c in summary.counts.items())
    if held != [list(t) for t in tables]:
        raise IntegrityError("change stream's per-table counts differ from its header's")


# --- the changes against the snapshot, and the cut-over's sequences ---------------------------


_AGAIN = (
    "the copy's changes do not continue its snapshot, so no restore of it is the database at "
    "any instant: the copy is damaged or was altered; copy the database again"
)


def check_follows_snapshot(source: Mapping[str, Any], first: ChangeRef | None) -> None:
    """A manifest with changes: its catalog's ``source`` record must say the snapshot came from
    the replication slot [R-CG-ORIGIN], and the first change segment must start at the slot's
    consistent point [R-CG-FROM-SNAPSHOT] (SPEC §11.5, POSTGRESQL.md §7). Otherwise the changes
    do not continue the snapshot: a copy restored from them is silently incomplete (changes
    missing) or has changes applied twice."""
    origin = source.get("snapshot_origin")
    if origin != "slot":
        raise FormatError(
            f"the manifest lists changes, but its catalog's snapshot was not read from a "
            f"replication slot (snapshot_origin {origin!r}, not 'slot'): the changes cannot "
            "follow it",
            hint=_AGAIN,
        )
    if first is None:
        return
    start = lsn_text(first.start_lsn)
    consistent = source.get("consistent_lsn")
    if consistent == start:
        return
    try:
        point: int | None = parse_lsn(consistent, "consistent_lsn")
    except FormatError:
        point = None
    if point is None:
        fault = "the snapshot has no consistent point to start from"
    elif first.start_lsn > point:
        fault = f"the changes committed between {consistent} and {start} are missing"
    else:
        fault = f"the changes committed between {start} and {consistent} would be applied twice"
    raise IntegrityError(
        f"the first change segment {first.name} starts at {start}, but the snapshot's "
        f"consistent point (source record consistent_lsn) is {consistent}: {fault}",
        hint=_AGAIN,
    )


def setval_lines(text: bytes) -> int:
    """The statements of a sequences stream: its non-empty lines but ``--`` comments."""
    return sum(1 for line in text.split(b"\n") if line and not line.startswith(b"--"))


def check_sequences(text: bytes, announced: int) -> None:
    """The cut-over's sequences stream holds as many ``setval`` lines as its ``cutover`` record
    says [R-CG-SEQUENCES]: a line lost or added would set a sequence the copy does not mean."""
    held = setval_lines(text)
    if held != announced:
        raise IntegrityError(
            f"the cut-over's sequences stream holds {held} setval lines, its cutover record "
            f"says {announced}",
            hint="the copy is damaged or was altered; restore it with --until-lsn below the "
            "cut-over segment's end LSN (its sequences are then the snapshot's), or copy the "
            "database again",
        )
