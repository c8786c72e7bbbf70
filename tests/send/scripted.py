"""A source fed from a list: a real implementation of the Source contract (sources/base.py),
whose items, contents, changes and pauses a test writes down, and which counts its reads.

Not a mock: the pipeline reads it as it reads a directory or a database, through ``batches()``,
``blocks()`` and ``finish()``; what differs is only where the bytes come from.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from transferd.core.source_entry import SourceEntry
from transferd.errors import SourceChangedError
from transferd.sources.base import InlineItem, Item, MetaItem


@dataclass
class Scripted:
    """One item of a script: a directory (no data), a file read whole while listing
    (``inline``), or a stream read in blocks."""

    path: bytes
    data: bytes | None = None
    version: str = "1"
    """The fingerprint: the same version says "unchanged since"."""
    changes: int = 0
    """Reads that end in SourceChangedError before one succeeds."""
    inline: bool = False


class ScriptedStream:
    def __init__(self, source: ScriptedSource, item: Scripted) -> None:
        assert item.data is not None
        self.source, self.item, self.data = source, item, item.data
        self.entry = SourceEntry(item.path, "file", 0o644, 1, len(item.data),
                                 fingerprint=item.version)  # fmt: skip

    async def blocks(self) -> AsyncIterator[bytes | memoryview]:
        self.source.reads[self.item.path] += 1
        step = self.source.block_size
        for start in range(0, len(self.data), step):
            yield self.data[start : start + step]
            await asyncio.sleep(0)

    async def finish(self, size: int, blake3: str) -> SourceEntry:
        if self.item.changes > 0:
            self.item.changes -= 1
            raise SourceChangedError(f"{self.item.path.decode()} changed while it was read")
        e = self.entry
        return SourceEntry(e.path, e.kind, e.mode, e.mtime_ns, size, None, blake3, None,
                           e.fingerprint)  # fmt: skip


class ScriptedSource:
    kind = "directory"
    """What the catalog records it as: its files and directories are a directory's."""
    description = "a scripted source"

    def __init__(
        self,
        script: Sequence[Scripted],
        *,
        independent_streams: bool = True,
        batch: int = 4,
        block_size: int = 256 * 1024,
        hold_after: int | None = None,
    ) -> None:
        self.script = list(script)
        self.independent_streams = independent_streams
        self.batch = batch
        self.block_size = block_size
        self.reads: collections.Counter[bytes] = collections.Counter()
        """Reads of each stream (inline items are read while listing and not counted)."""
        self.hold_after = hold_after
        """Stop listing after this many items until ``go_on`` is set (a run to be drained)."""
        self.go_on = asyncio.Event()
        self.listed = 0
        self.held = asyncio.Event()
        """Set once the listing stopped at ``hold_after``."""

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "root": self.description, "items": len(self.script)}

    async def size_hint(self) -> int | None:
        return sum(len(s.data or b"") for s in self.script)

    async def close(self) -> None:
        pass

    def _item(self, s: Scripted) -> Item:
        if s.data is None:
            return MetaItem(SourceEntry(s.path, "dir", 0o755, 1))
        if s.inline:
            entry = SourceEntry(s.path, "file", 0o644, 1, len(s.data), fingerprint=s.version)
            return InlineItem(entry, s.data)
        return ScriptedStream(self, s)

    async def batches(self) -> AsyncGenerator[Sequence[Item], None]:
        for start in range(0, len(self.script), self.batch):
            part = self.script[start : start + self.batch]
            if self.hold_after is not None and self.listed >= self.hold_after:
                self.held.set()
                await self.go_on.wait()
            self.listed += len(part)
            yield [self._item(s) for s in part]

    async def items(self) -> AsyncIterator[Item]:
        async with contextlib.aclosing(self.batches()) as batches:
            async for batch in batches:
                for item in batch:
                    yield item
