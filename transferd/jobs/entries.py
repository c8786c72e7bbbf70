"""Group a catalog's records into entries, refusing every sequence the format does not allow.

A catalog is ``source``, then entries, then ``totals``. An entry is a head record (``dir``,
``symlink``, ``file``, ``table``); a stream (file, table) is followed by its ``chunks`` records and
one ``end``. The walker is fed the records in order, one at a time, and holds nothing but the
entry open now and a few counters, so a catalog of any size is walked in constant memory.

It checks what a reader needs before trusting a record with the filesystem: every path is relative
and free of ``..`` and empty parts (``catalog.safe_path``), a symlink has a target, modes are
permission bits, a stream's chunks add up to the size its ``end`` states, nothing follows the
totals, and the catalog does not stop inside a stream (a truncated catalog must fail, not restore
a shorter file). The final ``totals`` must agree with what was walked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from transferd.core import catalog
from transferd.core.catalog import ChunkRef
from transferd.errors import FormatError

HEAD_KINDS = frozenset({"dir", "symlink", "file", "table"})
STREAM_KINDS = frozenset({"file", "table"})
_HEX64 = re.compile(r"[0-9a-f]{64}")


def show(path: bytes) -> str:
    """A path for messages: undecodable bytes escaped, never raising."""
    return path.decode("utf-8", "backslashreplace")


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing the catalog lists, its path checked safe to join under a target directory."""

    kind: str
    path: bytes
    mode: int | None
    mtime_ns: int | None
    target: bytes | None = None
    """A symlink's target, as recorded (it may be absolute or dangle: it is never followed)."""
    record: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The head record, for kind-specific fields (a table's schema and name)."""

    @property
    def is_stream(self) -> bool:
        return self.kind in STREAM_KINDS


@dataclass(frozen=True, slots=True)
class Chunks:
    """Chunk references of the open stream; ``offset`` is where the first one starts in it."""

    entry: Entry
    refs: list[ChunkRef]
    offset: int


@dataclass(frozen=True, slots=True)
class End:
    """The open stream's end: its size and the BLAKE3 of its whole content, as the catalog says."""

    entry: Entry
    size: int
    blake3: str
    record: dict[str, Any] = field(repr=False, compare=False)


Event = Entry | Chunks | End


@dataclass
class Counts:
    entries: int = 0
    files: int = 0
    streams: int = 0
    bytes: int = 0
    chunks: int = 0


class Walker:
    """Feed records in order with ``feed``; call ``finish`` after the last one."""

    def __init__(self) -> None:
        self.source: dict[str, Any] | None = None
        self.totals: dict[str, Any] | None = None
        self.counts = Counts()
        self._stream: Entry | None = None
        self._offset = 0
        self._records = 0

    def feed(self, record: dict[str, Any], refs: list[ChunkRef] | None = None) -> list[Event]:
        """The events one record makes. ``refs``: the chunks record's references, if the caller
        parsed them already (``catalog.record_chunks``)."""
        kind = record.get("t")
        self._records += 1
        if self.totals is not None:
            raise FormatError("catalog has records after its totals")
        if self.source is None:
            if kind != "source":
                raise FormatError("catalog does not start with its source record")
            self.source = record
            return []
        if kind == "source":
            raise FormatError("catalog has a second source record")
        if kind == "chunks":
            return [self._chunks(record, refs)]
        if kind == "end":
            return [self._end(record)]
        if self._stream is not None:
            raise FormatError(f"catalog: {show(self._stream.path)} has no end record")
        if kind == "totals":
            self.totals = record
            return []
        if kind not in HEAD_KINDS:  # pragma: no cover - parse_records allows only known types
            raise FormatError(f"catalog record {self._records} has unknown type {kind!r}")
        entry = head_entry(record)
        self.counts.entries += 1
        if entry.kind == "file":
            self.counts.files += 1
        if entry.is_stream:
            self.counts.streams += 1
            self._stream, self._offset = entry, 0
        return [entry]

    def _chunks(self, record: dict[str, Any], refs: list[ChunkRef] | None) -> Chunks:
        if self._stream is None:
            raise FormatError("catalog has chunk references outside a file or table")
        if refs is None:
            refs = catalog.record_chunks(record)
        event = Chunks(self._stream, refs, self._offset)
        self._offset += sum(r.plain_len for r in refs)
        self.counts.chunks += len(refs)
        return event

    def _end(self, record: dict[str, Any]) -> End:
        entry = self._stream
        if entry is None:
            raise FormatError("catalog has an end record outside a file or table")
        size, digest = record.get("size"), record.get("blake3")
        if not _is_count(size):
            raise FormatError(f"catalog: {show(entry.path)} has an invalid size")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise FormatError(f"catalog: {show(entry.path)} has an invalid BLAKE3")
        if size != self._offset:
            raise FormatError(
                f"catalog: {show(entry.path)} is {size} bytes but its chunks hold {self._offset}"
            )
        self._stream = None
        self.counts.bytes += size
        return End(entry, size, digest, record)

    def finish(self) -> None:
        """Refuse a catalog that stopped early, and one whose totals disagree with its records."""
        if self._stream is not None:
            raise FormatError(
                f"catalog ends inside {show(self._stream.path)}: its end record never came"
            )
        if self.source is None:
            raise FormatError("catalog is empty")
        if self.totals is None:
            raise FormatError("catalog has no totals record: it is truncated")
        walked = vars(self.counts)
        for name, count in walked.items():
            stated = self.totals.get(name)
            if stated is not None and stated != count:
                raise FormatError(f"catalog totals say {stated} {name}, its records hold {count}")


def head_entry(record: dict[str, Any]) -> Entry:
    """The entry a head record describes; refuses unsafe paths and impossible fields."""
    kind = record["t"]
    path = catalog.safe_path(record)
    mode, mtime = record.get("mode"), record.get("mtime_ns")
    if mode is not None and (not _is_count(mode) or mode > 0o7777):
        raise FormatError(f"catalog: {show(path)} has an invalid mode")
    if mtime is not None and (not isinstance(mtime, int) or isinstance(mtime, bool)):
        raise FormatError(f"catalog: {show(path)} has an invalid mtime")
    target = None
    if kind == "symlink":
        target = catalog.name_from(record, "target")
        if not target or b"\x00" in target:
            raise FormatError(f"catalog: symlink {show(path)} has an empty or invalid target")
    return Entry(kind, path, mode, mtime, target, record)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
