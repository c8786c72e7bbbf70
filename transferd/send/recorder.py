"""The journal's writes for one run, in order, on a thread of their own.

Each journal commit is an fsync (send/journal.py): on the event loop it stalled every upload and
the packers while it lasted (30 ms a commit on a busy disk). The recorder hands every write to
one thread, which runs them in the order given:

- ``pack_stored``: a pack the store acknowledged, with its chunks; once committed, the chunk
  index is told (send/index.py), so the journal answers for those chunks from then on;
- ``entry`` / ``reused``: entries read in this run, with the chunks they are made of, written in
  batches of ``ENTRY_FLUSH`` (one transaction for 2,000 small files, not one per file);
- ``checkpoint``: whatever entries are gathered, written now (a drain, the end of the run).

An entry is written as soon as it is read, before its chunks are acknowledged: the journal
reuses it on a later run only once every one of them is (the write-order rule of journal.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from transferd.core.packs import PackEntry
from transferd.core.source_entry import SourceEntry
from transferd.send.index import ChunkIndex
from transferd.send.journal import Journal

ENTRY_FLUSH = 2000
"""Entries recorded per journal transaction: one fsync per 2,000 small files, not per file."""


class Recorder:
    def __init__(self, journal: Journal, index: ChunkIndex, run: int) -> None:
        self._journal = journal
        self._index = index
        self._run = run
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="journal")
        self._entries: list[tuple[SourceEntry, list[bytes] | None]] = []
        self._touched: list[bytes] = []
        self._writing: asyncio.Future[None] | None = None
        """The batch of entries being written, if any: at most two are queued while the
        packers go on."""

    # --- packs ------------------------------------------------------------------------------

    async def pack_stored(self, name: str, size: int, entries: Sequence[PackEntry]) -> None:
        """Record a pack the store acknowledged; returns once the commit is durable."""
        await asyncio.wrap_future(self._thread.submit(self._record_pack, name, size, entries))

    def _record_pack(self, name: str, size: int, entries: Sequence[PackEntry]) -> None:
        chunks = [(e.chunk_id, e.offset, e.blob_len, e.plain_len) for e in entries]
        self._journal.record_pack(name, size, chunks)
        self._index.acknowledged(e.chunk_id for e in entries)

    # --- entries ----------------------------------------------------------------------------

    def entry(self, entry: SourceEntry, chunk_ids: list[bytes] | None) -> bool:
        """An entry read in this run (``None``: no content); True once a batch is due."""
        self._entries.append((entry, chunk_ids))
        return len(self._entries) + len(self._touched) >= ENTRY_FLUSH

    def reused(self, path: bytes) -> bool:
        """An entry reused unchanged: marked as seen in this run; True once a batch is due."""
        self._touched.append(path)
        return len(self._entries) + len(self._touched) >= ENTRY_FLUSH

    async def flush(self) -> None:
        """Hand the entries gathered so far to the journal's thread, then wait for the batch
        before. Taken before the wait, so that two packers never hand over the same entries."""
        if not self._entries and not self._touched:
            return
        entries, touched = self._take()
        previous = self._writing
        self._writing = asyncio.wrap_future(
            self._thread.submit(self._write_entries, entries, touched)
        )
        # When the batch before fails (a full state directory), this one is never awaited and
        # fails the same way: marked as seen, so that its error is not printed a second time as
        # "Future exception was never retrieved" after the first one ended the run.
        self._writing.add_done_callback(_seen)
        if previous is not None:
            await previous

    async def checkpoint(self) -> None:
        """Every entry gathered so far durable in the journal, behind any batch being written:
        a resume then reuses them instead of reading them again. Safe at any await point: an
        entry is reused only once all its chunks are acknowledged."""
        await self.flush()
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    def _take(self) -> tuple[list[tuple[SourceEntry, list[bytes] | None]], list[bytes]]:
        taken = self._entries, self._touched
        self._entries, self._touched = [], []
        return taken

    def _write_entries(
        self, entries: list[tuple[SourceEntry, list[bytes] | None]], touched: list[bytes]
    ) -> None:
        if entries:
            self._journal.put_entries(entries, self._run)
        if touched:
            self._journal.touch_entries(touched, self._run)

    def close(self) -> None:
        """Wait for the writes handed over, then stop the thread."""
        self._thread.shutdown(wait=True)


def _seen(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
