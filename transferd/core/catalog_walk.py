"""Group a catalog's records into entries, refusing every sequence the format does not allow.

A catalog is ``source``, then entries, then ``totals``. An entry is a head record (``dir``,
``symlink``, ``file``, ``table``); a stream (file, table) is followed by its ``chunks`` records and
one ``end``. The walker is fed the records in order, one at a time, and turns them into events
(an Entry, the Chunks of the open stream at their offset, its End).

Every check is the core's (``core.catalog_stream.CatalogChecker``, SPEC 10.2 to 10.4, 13.3,
13.5), made before a record becomes an event: each record has exactly its members, every path is
relative and free of ``..`` and empty parts and named once, a symlink has a target, modes are
permission bits, a stream's chunks add up to the size its ``end`` states, nothing follows the
totals, the catalog does not stop inside a stream (a truncated catalog must fail, not restore a
shorter file), and the final ``totals`` agree with what was walked. Besides the open entry the
walker holds a few counters and the checker's digest of each path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transferd.core.catalog import ChunkRef
from transferd.core.catalog_stream import STREAM_KINDS, CatalogChecker, Head
from transferd.core.catalog_stream import show as show  # for the jobs that name entries


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
        self.checker = CatalogChecker()
        self.counts = Counts()
        self._stream: Entry | None = None

    @property
    def source(self) -> dict[str, Any] | None:
        return self.checker.source

    @property
    def totals(self) -> dict[str, Any] | None:
        return self.checker.totals

    def feed(self, record: dict[str, Any], refs: list[ChunkRef] | None = None) -> list[Event]:
        """The events one record makes. ``refs``: the chunks record's references, if the caller
        parsed them already (``catalog.record_chunks``)."""
        offset = self.checker.stream_size
        checked = self.checker.feed(record, refs)
        if isinstance(checked, list):  # the references of a chunks record
            assert self._stream is not None  # noqa: S101 - the checker refuses chunks outside
            self.counts.chunks += len(checked)
            return [Chunks(self._stream, checked, offset)]
        if isinstance(checked, Head):
            entry = Entry(checked.kind, checked.path, checked.mode, checked.mtime_ns,
                          checked.target, record)  # fmt: skip
            self.counts.entries += 1
            if checked.kind == "file":
                self.counts.files += 1
            if entry.is_stream:
                self.counts.streams += 1
                self._stream = entry
            return [entry]
        if record["t"] == "end":
            assert self._stream is not None  # noqa: S101 - the checker refuses an end outside
            entry, self._stream = self._stream, None
            self.counts.bytes += record["size"]
            return [End(entry, record["size"], record["blake3"], record)]
        return []  # source, totals

    def finish(self) -> None:
        """Refuse a catalog that stopped early (the totals were checked when they came)."""
        self.checker.finish()
