"""``send --dry-run``: what a send would read, reuse and leave out, with nothing written.

The source is listed as a send lists it (the same filter rules, the same items), and each entry
is looked up in the job's journal, when there is one, the way the pipeline looks it up: an entry
whose path and fingerprint the journal holds, with every chunk acknowledged, would be reused
without being read. Nothing is read beyond the listing (a small file the directory source reads
while listing is the exception: it costs one read, not a byte sent), nothing is sealed, nothing is
sent, and no state is created: the journal, if any, is opened read-only and its directory is not
made. What would be *sent* is at most what would be read: compression and deduplication against
the host can only lower it, and only a real run can say by how much.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from transferd.send.journal import Journal
from transferd.sources.base import FailedItem, MetaItem, Source


@dataclass(frozen=True)
class Planned:
    """One entry of the plan: ``action`` is ``read``, ``unchanged``, ``record`` (a directory or
    symlink: no content), ``left-out`` (by the filter rules) or ``unreadable``."""

    action: str
    path: bytes
    size: int | None = None
    message: str | None = None


@dataclass
class DryRun:
    journal: Path | None
    """The journal consulted, None for a job this state directory never ran."""
    counts: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)

    def add(self, p: Planned) -> None:
        self.counts[p.action] = self.counts.get(p.action, 0) + 1
        self.bytes[p.action] = self.bytes.get(p.action, 0) + (p.size or 0)


def journal_path(state_dir: Path, job: str) -> Path:
    return state_dir / "jobs" / job / "journal.sqlite"


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[Journal | None]:
    if not path.exists():
        yield None
        return
    journal = Journal(path, read_only=True)
    try:
        yield journal
    finally:
        journal.close()


async def plan(
    source: Source,
    state_dir: Path,
    job: str,
    left_out: deque[tuple[bytes, int]],
    emit: Callable[[Planned], None],
) -> DryRun:
    """List ``source`` and say what a send of ``job`` would do with each entry.

    ``left_out`` is filled by the source (its ``on_left_out`` hook) with the paths its filter
    rules leave out while it lists; they are reported as they come."""
    path = journal_path(state_dir, job)
    result = DryRun(path if path.exists() else None)

    def out(p: Planned) -> None:
        result.add(p)
        emit(p)

    with _read_only(path) as db:
        async for item in source.items():
            while left_out:
                rel, size = left_out.popleft()
                out(Planned("left-out", rel, size))
            if isinstance(item, FailedItem):
                out(Planned("unreadable", item.path, None, item.message))
                continue
            entry = item.entry
            if isinstance(item, MetaItem):
                out(Planned("record", entry.path))
                continue
            known = db.reusable_entries([entry.path]).get(entry.path) if db is not None else None
            if (
                known is not None
                and known.fingerprint == entry.fingerprint
                and (known.kind == entry.kind)
            ):
                out(Planned("unchanged", entry.path, known.size))
            else:
                out(Planned("read", entry.path, entry.size))
        while left_out:
            rel, size = left_out.popleft()
            out(Planned("left-out", rel, size))
    return result


def left_out_collector(
    into: deque[tuple[bytes, int]],
) -> Callable[[bytes, os.stat_result], None]:
    """The ``on_left_out`` hook of a directory source, gathering (path, size) for ``plan``
    (called on the source's listing thread: a deque's append is atomic)."""

    def collect(rel: bytes, st: os.stat_result) -> None:
        into.append((rel, 0 if stat.S_ISDIR(st.st_mode) else st.st_size))

    return collect
