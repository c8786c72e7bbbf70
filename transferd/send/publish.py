"""Seal a run's catalog and object lists, and publish the signed manifest that names them.

Order (protocol/SPEC.md, write ordering): every pack is acknowledged first; then the catalog and
object-list segments, each acknowledged; the manifest last. A manifest therefore only ever names
objects the host holds durably, and a crash before it leaves the previous manifest the newest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from transferd.core import catalog, manifest, objectlist
from transferd.core.catalog import ChunkRef
from transferd.core.constants import CATALOG_CHUNKS_PER_RECORD, NONCE_SIZE, OBJECT_LIST_MAX_ENTRIES
from transferd.core.jobkey import JobKey, Stanza
from transferd.core.keys import SenderPublicKey, SenderSecretKey
from transferd.core.manifest import ManifestBody, SignedManifest, Totals
from transferd.core.objectlist import ObjectRef
from transferd.core.source_entry import SourceEntry
from transferd.errors import IntegrityError, LeaseLostError, RollbackError
from transferd.send.journal import Journal
from transferd.stores.base import Store

STREAM_KINDS = frozenset({"file", "table"})


def entry_records(entry: SourceEntry, refs: Iterator[ChunkRef]) -> Iterator[dict[str, Any]]:
    """The catalog records of one entry: its head, then its chunks and end for a stream."""
    head: dict[str, Any] = {"t": entry.kind, **catalog.name_fields("path", entry.path)}
    if entry.mode is not None:
        head["mode"] = entry.mode
    if entry.mtime_ns is not None:
        head["mtime_ns"] = entry.mtime_ns
    if entry.kind == "symlink" and entry.target is not None:
        head.update(catalog.name_fields("target", entry.target))
    end: dict[str, Any] = {"t": "end", "size": entry.size, "blake3": entry.blake3}
    if entry.extra:
        head.update(json.loads(entry.extra))
        if entry.kind == "table" and "rows" in head:
            end["rows"] = head.pop("rows")  # SPEC 10.2: a table's row count is in its end record
    yield head
    if entry.kind not in STREAM_KINDS:
        return
    batch: list[ChunkRef] = []
    for ref in refs:
        batch.append(ref)
        if len(batch) == CATALOG_CHUNKS_PER_RECORD:
            yield from catalog.chunk_records(batch)
            batch = []
    if batch:
        yield from catalog.chunk_records(batch)
    yield end


async def publish(
    *,
    store: Store,
    job: str,
    job_id: str,
    key: JobKey,
    journal: Journal,
    run: int,
    source_identity: dict[str, Any],
    sender: SenderSecretKey,
    stanzas: list[Stanza],
    created: str,
    rng: Callable[[int], bytes],
    epoch: int = 0,
) -> SignedManifest:
    """Write the run's catalog and object lists, then the next manifest of the job: on top of
    the job's head, carrying ``epoch``, the lease epoch of a copy's agent (0 without a lease)."""
    catalog_refs = await _write_catalog(store, job, key, journal, run, source_identity, rng)
    list_refs, totals = await _write_object_lists(store, job, journal)
    previous = await newest_manifest(store, job, sender.public(), job_id)
    if previous is not None and previous.body.epoch > epoch:
        raise LeaseLostError(
            f"job {job}: manifest {previous.key} was written at epoch {previous.body.epoch}, "
            f"after this agent's lease (epoch {epoch}) was taken over; stopping (nothing it "
            "wrote after that counts)",
            job=job,
            taken_over=True,
        )
    body = ManifestBody(
        job=job,
        job_id=job_id,
        sequence=1 if previous is None else previous.body.sequence + 1,
        created=created,
        previous=None if previous is None else previous.digest,
        sender=sender.public().to_text(),
        recipients=tuple(stanzas),
        key_check=key.key_check,
        object_lists=tuple(list_refs),
        catalog=tuple(catalog_refs),
        totals=totals,
        epoch=epoch,
    )
    return await put_manifest(store, body, sender)


async def put_manifest(store: Store, body: ManifestBody, sender: SenderSecretKey) -> SignedManifest:
    data = manifest.sign(body, sender)
    await store.put_manifest(body.job, body.sequence, data, body.epoch)
    return manifest.parse(data)


async def newest_manifest(
    store: Store, job: str, sender: SenderPublicKey | None, job_id: str | None
) -> SignedManifest | None:
    """The job's head at the host (its manifest of highest (epoch, sequence), SPEC 12.2),
    checked: signed (by ``sender`` when given), and of this job (``job_id`` when given) — a
    sender never chains onto a manifest it cannot trust."""
    newest = manifest.head_of(await store.list_manifests(job))
    if newest is None:
        return None
    data = await store.get_manifest(job, *newest)
    signed = manifest.verify(data, sender) if sender is not None else manifest.parse(data)
    if signed.key != newest:
        raise RollbackError(
            f"manifest stored as {newest} of job {job} says it is number {signed.key}"
        )
    if job_id is not None and signed.body.job_id != job_id:
        raise IntegrityError(
            f"job {job} at {store.description} belongs to another job (id {signed.body.job_id}, "
            f"this state has {job_id})",
            hint="use another job name, or the state directory that created this job",
        )
    return signed


async def _put(store: Store, job: str, data: bytes) -> ObjectRef:
    digest = hashlib.sha256(data).digest()
    await store.put_object(job, digest.hex(), data)
    return ObjectRef(digest, len(data))


async def _write_catalog(
    store: Store,
    job: str,
    key: JobKey,
    journal: Journal,
    run: int,
    source_identity: dict[str, Any],
    rng: Callable[[int], bytes],
) -> list[ObjectRef]:
    writer = catalog.CatalogWriter()
    refs: list[ObjectRef] = []
    counts = dict.fromkeys(("files", "dirs", "symlinks", "tables", "rows", "chunks", "bytes"), 0)

    segments: list[tuple[int, bytes]] = []  # full segments, sealed and stored by the caller

    def add(record: dict[str, Any]) -> None:
        # Not a coroutine: one await per record was 60,000 awaits for the two segments of
        # the bench's gigabyte.
        full = writer.add(record)
        if full is not None:
            segments.append(full)

    async def store_segments() -> None:
        for index, data in segments:
            sealed = catalog.seal_segment(key.catalog_key, index, data, rng(NONCE_SIZE))
            refs.append(await _put(store, job, sealed))
        segments.clear()

    add({"t": "source", **source_identity})
    for entry, chunk_refs in journal.entries_of_run(run):
        counts[entry.kind + "s"] += 1  # SPEC 10.2: files, dirs, symlinks, tables
        for record in entry_records(entry, chunk_refs):
            if record["t"] == "chunks":
                counts["chunks"] += len(record["c"])
            elif record["t"] == "end":
                counts["rows"] += record.get("rows", 0)
                counts["bytes"] += record["size"]
            add(record)
        if segments:
            await store_segments()
    add({"t": "totals", **counts})
    last = writer.finish()
    if last is not None:
        segments.append(last)
    await store_segments()
    return refs


async def _write_object_lists(
    store: Store, job: str, journal: Journal
) -> tuple[list[ObjectRef], Totals]:
    refs: list[ObjectRef] = []
    batch: list[ObjectRef] = []
    count = total = 0
    for name, size in journal.packs_in_order():
        batch.append(ObjectRef(bytes.fromhex(name), size))
        count += 1
        total += size
        if len(batch) == OBJECT_LIST_MAX_ENTRIES:
            refs.append(await _put(store, job, objectlist.encode_segment(batch)))
            batch = []
    if batch:  # a job with no pack has no object-list segment (SPEC 9, 11.2)
        refs.append(await _put(store, job, objectlist.encode_segment(batch)))
    return refs, Totals(objects=count, stored_bytes=total)
