"""Restore a stored copy into a directory, byte for byte: the reader's items, written by a Target.

The order of checks is the order of costs: the target must be empty (or ``force``) before the
store is touched; the manifest's signature and the key's unwrapping must succeed before the target
is created, so a wrong identity fails with exit 12 and leaves nothing behind. Then every entry is
written as the reader yields it, a file being renamed to its name only after the reader vouched
for its size and BLAKE3 (``reader.StreamEnd``).

Small files are written in one thread hop each: their pieces are kept until the file ends or
holds ``FLUSH_BYTES``, then opened, written and handed to a finisher in one call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from transferd.core.keys import RecipientIdentity, SenderPublicKey
from transferd.core.manifest import SignedManifest
from transferd.jobs.entries import Entry
from transferd.jobs.reader import (
    JobReader,
    Piece,
    ReadCounters,
    Warn,
    load_manifest,
    log_warning,
    unwrap_key,
)
from transferd.jobs.target import OpenFile, Target, TargetCounters, check_target
from transferd.stores.base import Store

FLUSH_BYTES = 8 * 1024 * 1024
"""Plaintext kept per file before it is written: one thread hop per 8 MiB, or per small file."""


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
    entry: Entry
    pieces: list[Piece] = field(default_factory=list)
    buffered: int = 0
    file: OpenFile | None = None


async def restore(
    *,
    store: Store,
    job: str,
    identity: RecipientIdentity,
    out: Path,
    sender: SenderPublicKey | None = None,
    sequence: int | None = None,
    force: bool = False,
    workers: int = 0,
    fsync: bool = True,
    progress: RestoreProgress | None = None,
    warn: Warn | None = None,
) -> RestoreResult:
    """Rebuild the job's tree (its newest manifest, or ``sequence``) under ``out``."""
    progress = progress or RestoreProgress()
    started = time.monotonic()
    check_target(out, force)
    signed = await load_manifest(
        store, job, sender=sender, sequence=sequence, warn=warn or log_warning
    )
    key = unwrap_key(signed, identity)
    reader = JobReader(store, signed, key, workers=workers)
    target = await asyncio.to_thread(Target, out, force, fsync)
    progress.reading, progress.writing = reader.counters, target.counters
    try:
        await _write_all(reader, target)
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
        bytes_fetched=reader.packs.bytes_fetched,
        seconds=time.monotonic() - started,
        source=reader.source,
    )


async def _write_all(reader: JobReader, target: Target) -> None:
    stream: _Stream | None = None
    async with contextlib.aclosing(reader.items()) as items:
        async for item in items:
            if isinstance(item, Piece):
                assert stream is not None  # noqa: S101 - the reader yields pieces inside streams
                stream.pieces.append(item)
                stream.buffered += len(item.data)
                if stream.buffered >= FLUSH_BYTES:
                    await asyncio.to_thread(_flush, target, stream)
            elif isinstance(item, Entry):
                if item.is_stream:
                    stream = _Stream(item)
                elif item.kind == "dir":
                    await asyncio.to_thread(target.directory, item)
                else:
                    await asyncio.to_thread(target.symlink, item)
            else:
                assert stream is not None  # noqa: S101 - a stream end follows its stream's head
                await asyncio.to_thread(_complete, target, stream, item.size)
                stream = None


def _flush(target: Target, stream: _Stream) -> None:
    if stream.file is None:
        stream.file = target.open_file(stream.entry)
    for piece in stream.pieces:
        target.write(stream.file, piece.offset, piece.data)
    stream.pieces, stream.buffered = [], 0


def _complete(target: Target, stream: _Stream, size: int) -> None:
    _flush(target, stream)
    assert stream.file is not None  # noqa: S101 - _flush opened it
    target.finish_file(stream.file, size)
