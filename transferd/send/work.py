"""What passes from the producer to the packers: one typed variant per kind of work.

The producer (send/produce.py) turns the source's items into these, in order, and the packers
(send/packer.py) take them in that order: each says what was read and, through a future, what
the sealing threads made of it. A variant carries exactly the fields its kind has, so nothing
downstream tests a tag or asserts that a field is set; ``match`` over ``Work`` is checked for
exhaustiveness by mypy.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field

from transferd.core.source_entry import SourceEntry


@dataclass(slots=True)
class Sealed:
    """One chunk as a sealing thread left it."""

    chunk_id: bytes
    plain_len: int
    blob: bytearray | None
    """The sealed blob; None when the chunk index says it is not to be sent (the host holds it,
    or this run already sealed it for a pack)."""


@dataclass(frozen=True, slots=True)
class SealedInline:
    """A batch of small files, sealed: each file's content hash and chunk count, and all their
    chunks in file order."""

    hashes: list[str]
    counts: list[int]
    chunks: list[Sealed]


@dataclass(slots=True)
class Stream:
    """An entry being read in blocks, and the chunk ids it is made of so far."""

    entry: SourceEntry
    chunk_ids: list[bytes] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EntryListed:
    """An entry with no content (a directory, a symlink): recorded as listed."""

    entry: SourceEntry


@dataclass(frozen=True, slots=True)
class EntryReused:
    """An entry unchanged since the journal recorded it with every chunk acknowledged: recorded
    as seen in this run, without being read."""

    entry: SourceEntry


@dataclass(frozen=True, slots=True)
class InlineBatch:
    """Small files read whole while listing, sealed together: their entries as listed."""

    entries: list[SourceEntry]
    sealed: Future[SealedInline]


@dataclass(frozen=True, slots=True)
class BlockSealed:
    """The chunks of one block of a stream (or its tail, at the end), being sealed."""

    stream: Stream
    sealed: Future[list[Sealed]]


@dataclass(frozen=True, slots=True)
class StreamRead:
    """A stream read to its end, after its last block: its entry as read (size, hash)."""

    stream: Stream
    entry: SourceEntry


@dataclass(frozen=True, slots=True)
class StreamAbandoned:
    """A stream that changed while it was read, or failed: its chunks still go into packs
    (another entry may name them), its entry is not recorded."""

    stream: Stream


Work = EntryListed | EntryReused | InlineBatch | BlockSealed | StreamRead | StreamAbandoned
