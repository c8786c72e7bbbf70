"""The chunk index: the one place that decides whether a chunk is sealed and sent.

A chunk is sent at most once per job. Two things make a chunk known: the journal holds it (the
host acknowledged a pack with it, in this run or an earlier one), or this run has already
claimed it for a pack that is not acknowledged yet. The index holds the second set, asks the
journal for the first, and answers both under one lock, so two sealing threads never claim the
same chunk and a chunk is never lost between the two sets:

- ``claim`` (on a sealing thread, before compressing anything) answers, for each id of a
  batch, whether the caller is to seal it, and marks the ones it gives out as claimed;
- ``acknowledged`` (on the journal's thread, once the pack's journal commit is durable) moves a
  pack's chunks out of the claimed set: from then on the journal answers for them.

A chunk given out by ``claim`` reaches a pack whatever happens to the stream it came from (a
stream that changed while read is abandoned, its blocks are still packed): another entry may
name the chunk because the index said it was on its way.

Memory: the claimed set holds the chunks of the packs being filled and uploaded (a few hundred
ids), not the job's: everything acknowledged is in the journal, on disk.

Nothing here runs on the event loop: the journal's queries stay off it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from transferd.send.journal import Journal


class ChunkIndex:
    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._lock = threading.Lock()
        self._claimed: set[bytes] = set()
        self._journal_empty = not journal.has_chunks()
        """A first run's journal holds no chunk until its first pack is acknowledged: until then
        the index does not ask it (20,000 small files, 80 queries for nothing)."""

    def claim(self, chunk_ids: Sequence[bytes]) -> list[bool]:
        """For each id, True if the caller is to seal and send the chunk: neither acknowledged
        nor claimed before (a repeat within ``chunk_ids`` is claimed once)."""
        with self._lock:
            claimed = self._claimed
            unseen = [c for c in chunk_ids if c not in claimed]
            held = self._journal.known_chunks(unseen) if unseen and not self._journal_empty else ()
            given: list[bool] = []
            for cid in chunk_ids:
                new = cid not in claimed and cid not in held
                if new:
                    claimed.add(cid)
                given.append(new)
            return given

    def acknowledged(self, chunk_ids: Iterable[bytes]) -> None:
        """The journal now holds these chunks (a pack's commit returned)."""
        with self._lock:
            self._claimed.difference_update(chunk_ids)
            self._journal_empty = False

    def claimed(self) -> int:
        """Chunks claimed and not yet acknowledged (tests, metrics)."""
        with self._lock:
            return len(self._claimed)
