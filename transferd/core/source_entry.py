"""What a source yields for each thing it copies: its metadata as recorded, without its chunks.

The sources (sources/), the send pipeline and the journal (send/) all speak of one such value;
it lives in the core so that a source needs nothing of the sender's to describe what it reads.
The catalog records it (core/catalog.py); the read side walks it back as core/catalog_walk.py's
``Entry``, which adds the chunk list and the checks a reader makes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """One thing copied: its metadata as recorded, without its chunk list."""

    path: bytes
    kind: str
    mode: int | None = None
    mtime_ns: int | None = None
    size: int | None = None
    target: bytes | None = None
    blake3: str | None = None
    extra: str | None = None
    """Kind-specific catalog fields as canonical JSON (a table's schema and row count, …)."""
    fingerprint: str | None = None
    """What the source says identifies this content unchanged (size, mtime, ctime and inode of a
    file; the snapshot of a table; the ETag of a blob): equal fingerprints allow reuse."""
