"""What a stored copy holds, without fetching its content: the manifests of a job, and the tree
of one version (``transferd ls``, after restic's ``snapshots`` and ``ls``).

A manifest is read and its signature checked against the expected sender when one is given
(otherwise it is parsed and marked unchecked). The tree comes from the catalog alone: its
segments are fetched, checked against the manifest's SHA-256 and opened, and walked with the
same checks a restore makes; no pack is fetched.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from transferd.core import catalog, manifest
from transferd.core.catalog_walk import End, Entry
from transferd.core.keys import SenderPublicKey
from transferd.errors import FormatError, IntegrityError
from transferd.read.reader import JobReader
from transferd.stores.base import Store


@dataclass(frozen=True)
class ManifestInfo:
    job: str
    sequence: int
    created: str
    sender: str
    objects: int
    stored_bytes: int
    sha256: str
    checked: bool
    """True when the signature was checked against the expected sender (and held)."""


@dataclass(frozen=True)
class Listed:
    """An entry of a version's tree; ``size`` and ``blake3`` for a stream (file, table)."""

    entry: Entry
    size: int | None = None
    blake3: str | None = None


async def manifests(
    store: Store, job: str, sender: SenderPublicKey | None
) -> AsyncIterator[ManifestInfo]:
    """Every manifest of ``job``, in sequence order; IntegrityError on a bad signature when
    ``sender`` is given."""
    for key in await store.list_manifests(job):
        data = await store.get_manifest(job, *key)
        signed = manifest.verify(data, sender) if sender is not None else manifest.parse(data)
        body = signed.body
        if body.key != key or body.job != job:
            raise IntegrityError(
                f"manifest stored as {key} of job {job} says it is {body.key} of job {body.job}"
            )
        yield ManifestInfo(
            job, key.sequence, body.created, body.sender, body.totals.objects,
            body.totals.stored_bytes, signed.digest, sender is not None,
        )  # fmt: skip


async def tree(reader: JobReader) -> AsyncIterator[Listed]:
    """Every entry of the reader's version, in catalog order, from its catalog alone."""
    walker = reader.walker
    stream: Entry | None = None
    async with contextlib.aclosing(reader.segments()) as segments:
        async for records in segments:
            for record in records:
                refs = catalog.record_chunks(record) if record.get("t") == "chunks" else None
                for event in walker.feed(record, refs):
                    if isinstance(event, Entry):
                        if event.is_stream:
                            stream = event
                        else:
                            yield Listed(event)
                    elif isinstance(event, End):
                        if stream is None:  # pragma: no cover - the walker refuses it
                            raise FormatError("an end record outside a stream")
                        yield Listed(stream, event.size, event.blake3)
                        stream = None
    walker.finish()
