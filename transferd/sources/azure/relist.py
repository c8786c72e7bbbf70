"""The proof at the end of a run: every blob copied is still what was read, and none was added.

A blob read under ``If-Match: <ETag>`` is one consistent version of itself, but a container is
not a snapshot: on an account without versions (ADLS Gen2, hierarchical namespace, has none) a
blob may be rewritten after it was read, or added after the listing passed its name. So the
source records, in listing order, the ETag each blob was read at, and once the last one is read
lists the prefix again and compares (two name-ordered sequences merged, one pass): a blob whose
ETag moved, one added, one deleted since is named, and the run ends without publishing (exit 8);
the next run reads only what changed (the journal keeps the rest) and checks again.

The record is a spooled temporary file (in memory up to ``SPOOL_BYTES``, then on disk): a job of
millions of blobs does not hold their names in memory. Blobs that could not be read are recorded
without an ETag and left out of the comparison: they are reported already (exit 3 otherwise).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

SPOOL_BYTES = 8 * 1024 * 1024
NAMED = 10
"""Changed blobs named in the message; the count says how many there are in all."""


class ReadLog:
    """(blob name, ETag it was read at or None) in listing order."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+b")  # noqa: SIM115 - closed by close()
        self.count = 0

    def add(self, name: str, etag: str | None) -> None:
        self._file.write(json.dumps([name, unquoted(etag)]).encode() + b"\n")
        self.count += 1

    def entries(self) -> Iterator[tuple[str, str | None]]:
        self._file.seek(0)
        for line in self._file:
            name, etag = json.loads(line)
            yield name, etag

    def close(self) -> None:
        self._file.close()


def unquoted(etag: str | None) -> str | None:
    """The ETag without its quotes: Azure lists ETags bare but answers a blob's properties with
    them quoted, as HTTP writes them."""
    return None if etag is None else etag.strip('"')


@dataclass
class Changes:
    count: int = 0
    named: list[str] = field(default_factory=list)

    def add(self, name: str, what: str) -> None:
        self.count += 1
        if len(self.named) < NAMED:
            self.named.append(f"{name} ({what})")

    def describe(self) -> str:
        more = self.count - len(self.named)
        return ", ".join(self.named) + (f" and {more} more" if more > 0 else "")


async def compare(log: ReadLog, listing: AsyncIterator[tuple[str, str]]) -> Changes:
    """What differs between what was read (``log``) and ``listing`` (name, ETag), both in name
    order: modified (another ETag), added (not listed before), removed (gone since)."""
    changes = Changes()
    read = log.entries()
    pending = next(read, None)
    async for name, etag in listing:
        while pending is not None and pending[0] < name:
            if pending[1] is not None:
                changes.add(pending[0], "deleted since it was read")
            pending = next(read, None)
        if pending is not None and pending[0] == name:
            if pending[1] is not None and pending[1] != unquoted(etag):
                changes.add(name, "modified since it was read")
            pending = next(read, None)
        else:
            changes.add(name, "added since the listing")
    while pending is not None:
        if pending[1] is not None:
            changes.add(pending[0], "deleted since it was read")
        pending = next(read, None)
    return changes
