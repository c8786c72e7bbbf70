"""The Source contract: what the send pipeline asks of anything it copies.

A source yields, in a stable order, *items*:

- a ``MetaItem``: an entry with no content (a directory, a symlink);
- a ``StreamItem``: an entry with content (a file, a table, a blob). Its ``fingerprint`` says what
  identifies the content unchanged (a file's size, mtime, ctime and inode; a table's snapshot; a
  blob's ETag): when the journal holds an entry with the same path and fingerprint whose chunks the
  host all holds, the pipeline reuses it without reading. Otherwise it reads ``blocks()`` to the end
  and then calls ``finish()``, which returns the entry as it was actually read (or raises
  ``SourceChangedError`` if the content changed while it was read, so the pipeline reads it again).

Contract for every driver (tests/sources/ runs the suite):
1. Paths are relative, ``/``-separated bytes without ``.``/``..``/empty parts; each appears once.
2. ``blocks()`` yields the content in order, in blocks of any size; it may be called again after
   ``SourceChangedError`` to read anew.
3. A per-item read failure raises ``SourceError`` naming the item from ``blocks()``, or is
   yielded as a ``FailedItem`` when it happens while listing: either way the pipeline records it,
   skips the item, and the run ends with exit code 3 once its manifest is published. A failure
   of the whole source (server gone, wrong password) raises ``SourceError`` from ``items()``:
   the run ends with exit code 8, before anything is published.
4. ``identity()`` returns the catalog ``source`` record's fields: what was copied (kind, root or
   server, snapshot), never a password.
5. ``batches()`` yields the same items as ``items()``, in the same order, in lists: a source that
   lists many small items at once (a directory) hands out a list per event-loop step instead of
   an item; any other hands out lists of one (``one_per_batch``). The pipeline takes every item
   of a list before it asks for the next list, so a source may look, after a list was taken, at
   what the pipeline did with it (a table the pipeline reused is not read ahead).
6. ``independent_streams`` says whether a stream item can be read while the listing goes on
   (the pipeline then reads streams on a lane of their own, beside the small items): true when
   each stream opens what it reads by itself (a file), false when streams are read through what
   lists them (a database connection), where reading ahead of the listing would deadlock.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from transferd.core.source_entry import SourceEntry


@dataclass(slots=True)
class FailedItem:
    """An item that could not be listed or read; the run goes on without it (exit code 3)."""

    path: bytes
    message: str


@dataclass(slots=True)
class MetaItem:
    entry: SourceEntry


class StreamItem(Protocol):
    entry: SourceEntry
    """What is known before reading: path, kind, fingerprint, and the source's metadata."""

    def blocks(self) -> AsyncIterator[bytes | memoryview]: ...

    async def finish(self, size: int, blake3: str) -> SourceEntry:
        """The entry as read (size and hash filled in), after the last block."""
        ...


@dataclass(slots=True)
class InlineItem:
    """A stream small enough that the source read it whole while listing (small files)."""

    entry: SourceEntry
    data: bytes
    extra_check: Any = field(default=None, repr=False)

    async def blocks(self) -> AsyncIterator[bytes | memoryview]:
        yield self.data

    async def finish(self, size: int, blake3: str) -> SourceEntry:
        e = self.entry
        return SourceEntry(
            e.path, e.kind, e.mode, e.mtime_ns, size, e.target, blake3, e.extra, e.fingerprint
        )


Item = MetaItem | StreamItem | FailedItem


class Source(Protocol):
    kind: str
    description: str
    """For messages: a path or a URL without any password."""
    independent_streams: bool
    """Whether a stream can be read while the listing goes on (contract, item 6)."""

    def identity(self) -> dict[str, Any]: ...

    def items(self) -> AsyncIterator[Item]: ...

    def batches(self) -> AsyncGenerator[Sequence[Item], None]:
        """The items in lists (contract, item 5)."""
        ...

    async def size_hint(self) -> int | None:
        """Total bytes to read, for the ETA, or None when unknown."""
        ...

    async def close(self) -> None: ...


async def one_per_batch(items: AsyncIterator[Item]) -> AsyncGenerator[Sequence[Item], None]:
    """``batches()`` of a source that lists one item at a time: each item in a list of its own,
    the next one asked for only once the pipeline took it."""
    async for item in items:
        yield (item,)
