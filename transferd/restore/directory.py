"""Restore a stored copy into a directory, byte for byte: the reader's items, written by a Target.

The order of checks is the order of costs: the target must be empty (or ``force``) before the
store is touched; the manifest's signature and the key's unwrapping must succeed before the target
is created, so a wrong identity fails with exit 12 and leaves nothing behind. Then every entry is
written as the reader yields it, a file being renamed to its name only after the reader vouched
for its size and BLAKE3 (the ``End`` the reader yields).

The event loop only batches: a file's pieces are kept until it ends or holds ``FLUSH_BYTES``, and
the Target calls (create a directory or symlink, write a file, hand it to a finisher) run in order
in one thread hop per batch of ``BATCH_CALLS`` entries or ``FLUSH_BYTES``: a hop per small file
would cost more than writing it.

``resume`` goes on from a restore that was killed or failed: the reader is told which files the
target holds already (``Target.holds``: name, mode and mtime as in the catalog, which only a
finished file has), fetches none of their chunks, and each is proven against its ``End`` (size and
BLAKE3, ``Target.check_held``) in the batches; a file that fails its proof is restored again on a
second walk of the catalog that wants only those files.

``select`` restores part of a copy (``restore --include``): only the files and links it takes
are read, so only the packs holding their chunks are fetched (the catalog is still read whole:
it says where everything is). A directory is written when the rules take it or when something
restored lies below it; the others, held back as the catalog names them, are never created.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from transferd.core.catalog_walk import End, Entry
from transferd.core.keys import RecipientIdentity, SenderPublicKey
from transferd.core.manifest import SignedManifest
from transferd.read.reader import (
    Held,
    JobReader,
    Piece,
    ReadCounters,
    Warn,
    load_manifest,
    log_warning,
    unwrap_key,
)
from transferd.restore.tree import OpenFile, Target, TargetCounters, check_target
from transferd.stores.base import Store
from transferd.util.pathfilter import PathFilter

FLUSH_BYTES = 8 * 1024 * 1024
"""Plaintext kept before it is written: one thread hop per 8 MiB, or per batch of small files."""
BATCH_CALLS = 256
"""Entries (directories, symlinks, small files) written per thread hop."""


@dataclass
class RestoreProgress:
    """What a restore did so far: the progress display reads it while the restore runs."""

    reading: ReadCounters | None = None
    writing: TargetCounters | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def bytes(self) -> int:
        return self.reading.bytes if self.reading else 0

    @property
    def entries(self) -> int:
        return self.reading.entries if self.reading else 0


@dataclass
class RestoreResult:
    job: str
    manifest: SignedManifest
    signer_checked: bool
    counters: TargetCounters
    bytes: int
    bytes_fetched: int
    seconds: float
    source: dict[str, object] | None


@dataclass
class _Stream:
    """A stream being restored. ``pieces`` and ``buffered`` belong to the event loop; ``file``
    to the batches, which run in order on a thread."""

    entry: Entry
    pieces: list[Piece] = field(default_factory=list)
    buffered: int = 0
    file: OpenFile | None = None

    def take(self) -> list[Piece]:
        pieces, self.pieces, self.buffered = self.pieces, [], 0
        return pieces


async def restore(
    *,
    store: Store,
    job: str,
    identity: RecipientIdentity,
    out: Path,
    sender: SenderPublicKey | None = None,
    sequence: int | None = None,
    force: bool = False,
    resume: bool = False,
    workers: int = 0,
    fsync: bool = True,
    progress: RestoreProgress | None = None,
    warn: Warn | None = None,
    select: PathFilter | None = None,
) -> RestoreResult:
    """Rebuild the job's tree (its newest manifest, or ``sequence``) under ``out``.

    ``resume``: go on from an interrupted restore into ``out``: the files it finished are kept
    once proven by size and BLAKE3 (their chunks are not fetched), everything else is written
    as with ``force``. ``select``: restore only what these filter rules take."""
    progress = progress or RestoreProgress()
    chosen = _Chosen(select) if select is not None and select.active else None
    started = time.monotonic()
    check_target(out, force or resume)
    signed = await load_manifest(
        store, job, sender=sender, sequence=sequence, warn=warn or log_warning
    )
    key = unwrap_key(signed, identity)
    reader = JobReader(store, signed, key, workers=workers)
    target = await asyncio.to_thread(Target, out, force or resume, fsync)
    progress.reading, progress.writing = reader.counters, target.counters
    fetched = 0
    try:
        if resume:
            await asyncio.to_thread(target.remove_leftovers)
            redo = await _write_all(reader, target, held=target.holds, chosen=chosen)
            if redo:  # kept files that failed their proof: restored again, on a second walk
                fetched = reader.packs.bytes_fetched
                await reader.close()
                reader = JobReader(store, signed, key, workers=workers)
                progress.reading = reader.counters
                await _write_all(reader, target, wanted=lambda e: e.path in redo)
        else:
            await _write_all(reader, target, chosen=chosen)
        await asyncio.to_thread(target.finish)
    except BaseException:
        await asyncio.to_thread(target.close)
        raise
    finally:
        await reader.close()
    return RestoreResult(
        job=job,
        manifest=signed,
        signer_checked=sender is not None,
        counters=target.counters,
        bytes=reader.counters.bytes,
        bytes_fetched=fetched + reader.packs.bytes_fetched,
        seconds=time.monotonic() - started,
        source=reader.source,
    )


async def _write_all(
    reader: JobReader,
    target: Target,
    *,
    wanted: Callable[[Entry], bool] | None = None,
    held: Callable[[Entry], bool] | None = None,
    chosen: _Chosen | None = None,
) -> set[bytes]:
    """Turn the reader's items into Target calls, run in order, in batches on a thread.

    Returns the paths of the ``held`` files that failed their proof (to restore again)."""
    if chosen is not None:
        wanted = chosen.wanted
    batch = _Batch()
    stream: _Stream | None = None
    kept: Entry | None = None
    redo: set[bytes] = set()
    items = reader.items(wanted) if held is None else reader.items(wanted, held)
    async with contextlib.aclosing(items):
        async for item in items:
            if isinstance(item, Held):
                kept = item.entry
                if chosen is not None:
                    for parent in chosen.parents_of(item.entry):
                        batch.add(functools.partial(target.directory, parent), 0)
            elif isinstance(item, End) and kept is not None:
                batch.add(functools.partial(_prove, target, kept, item, redo), item.size)
                kept = None
            elif isinstance(item, Piece):
                assert stream is not None  # noqa: S101 - the reader yields pieces inside streams
                stream.pieces.append(item)
                stream.buffered += len(item.data)
                if stream.buffered >= FLUSH_BYTES:
                    nbytes = stream.buffered
                    batch.add(functools.partial(_write, target, stream, stream.take()), nbytes)
            elif isinstance(item, Entry):
                if chosen is not None:
                    if item.kind == "dir" and not chosen.takes(item):
                        chosen.hold(item)
                        continue
                    for parent in chosen.parents_of(item):
                        batch.add(functools.partial(target.directory, parent), 0)
                if item.is_stream:
                    stream = _Stream(item)
                elif item.kind == "dir":
                    batch.add(functools.partial(target.directory, item), 0)
                else:
                    batch.add(functools.partial(target.symlink, item), 0)
            else:
                assert stream is not None  # noqa: S101 - a stream end follows its stream's head
                nbytes = stream.buffered
                pieces = stream.take()
                batch.add(functools.partial(_complete, target, stream, pieces, item.size), nbytes)
                stream = None
            if batch.full():
                await batch.run()
    await batch.run()
    return redo


class _Chosen:
    """The part of a copy ``restore --include`` restores, and the directories held back until
    something restored lies below them (the catalog is sorted by path bytes, not depth first:
    ``a``, ``a-b``, ``a/c``; so they are held by path, not on a stack)."""

    def __init__(self, select: PathFilter) -> None:
        self.select = select
        self._held: dict[bytes, Entry] = {}
        self._last: tuple[Entry | None, bool] = (None, False)

    def takes(self, entry: Entry) -> bool:
        """A file or link the rules take; a directory they take as a path too (``claims/**``
        takes ``claims/2020``), unless a directory rule leaves it out (``- claims/``)."""
        if entry.kind == "dir" and not self.select.includes(entry.path, is_dir=True):
            return False
        return self.select.includes(entry.path)

    def wanted(self, entry: Entry) -> bool:
        """For the reader: every directory (decided here), and the entries the rules take.
        Asked for every chunks record of a stream: the last answer is kept."""
        if entry.kind == "dir":
            return True
        last, answer = self._last
        if last is not entry:
            answer = self.takes(entry)
            self._last = (entry, answer)
        return answer

    def hold(self, entry: Entry) -> None:
        self._held[entry.path] = entry

    def parents_of(self, entry: Entry) -> list[Entry]:
        """The held directories above ``entry``, outermost first, now released."""
        parents: list[Entry] = []
        path = entry.path
        while b"/" in path:
            path = path.rpartition(b"/")[0]
            parent = self._held.pop(path, None)
            if parent is not None:
                parents.append(parent)
        return parents[::-1]


class _Batch:
    """Target calls waiting to run, in order, in one thread hop: a hop per entry would cost
    more than writing a small file."""

    def __init__(self) -> None:
        self.calls: list[Callable[[], None]] = []
        self.bytes = 0

    def add(self, call: Callable[[], None], nbytes: int) -> None:
        self.calls.append(call)
        self.bytes += nbytes

    def full(self) -> bool:
        return len(self.calls) >= BATCH_CALLS or self.bytes >= FLUSH_BYTES

    async def run(self) -> None:
        calls, self.calls, self.bytes = self.calls, [], 0
        if calls:
            await asyncio.to_thread(_run_all, calls)


def _run_all(calls: list[Callable[[], None]]) -> None:
    for call in calls:
        call()


def _write(target: Target, stream: _Stream, pieces: list[Piece]) -> None:
    if stream.file is None:
        stream.file = target.open_file(stream.entry)
    for piece in pieces:
        target.write(stream.file, piece.offset, piece.data)


def _prove(target: Target, entry: Entry, end: End, redo: set[bytes]) -> None:
    if not target.check_held(entry, end.size, end.blake3):
        redo.add(entry.path)


def _complete(target: Target, stream: _Stream, pieces: list[Piece], size: int) -> None:
    _write(target, stream, pieces)
    assert stream.file is not None  # noqa: S101 - _write opened it
    target.finish_file(stream.file, size)
