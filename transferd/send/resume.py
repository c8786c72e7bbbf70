"""Before a run trusts its journal: reconcile it with what the storage host actually holds.

Reads in reverse (pgBackRest's resume.c is the model): first drop from the journal any pack the
host no longer holds (its chunks will be sent again), then adopt packs the host holds that the
journal never recorded — a pack acknowledged just before the sender was killed, whose journal
commit never happened. Its header, sealed with the job key, says which chunks it holds, so they
are not sent a third time and the pack does not remain as an unlisted extra object.

Catalog and object-list segments that no manifest names are the leftovers of a run killed while
publishing; they are deleted, so that a verifier finds no extra object once the job completes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from transferd.core import manifest, packs
from transferd.core.constants import (
    CATALOG_MAGIC,
    FORMAT_VERSION,
    OBJECT_LIST_MAGIC,
    PACK_MAX_SIZE,
)
from transferd.core.jobkey import JobKey
from transferd.errors import AuthenticationError, FormatError
from transferd.send.journal import Journal
from transferd.stores.base import Store

log = logging.getLogger(__name__)


@dataclass
class Reconciled:
    dropped: int = 0
    """Packs the journal named that the host no longer holds."""
    adopted: int = 0
    """Packs the host holds that the journal did not know (their commit was lost in a crash)."""
    removed: int = 0
    """Segments of an interrupted publication, named by no manifest, deleted."""


async def reconcile(store: Store, job: str, key: JobKey, journal: Journal) -> Reconciled:
    result = Reconciled()
    for batch in journal.pack_names():
        held = await store.has_objects(job, batch)
        missing = [n for n in batch if n not in held]
        if missing:
            result.dropped += journal.forget_packs(missing)
    if result.dropped:
        log.warning(
            "the host no longer holds %d acknowledged packs; they will be sent again",
            result.dropped,
        )
    referenced = await _referenced_segments(store, job)
    async for name, size in store.list_objects(job):
        if journal.has_pack(name) or name in referenced or size < packs.PACK_PREFIX_SIZE + 4:
            continue
        prefix = await store.get_object(job, name, 0, packs.PACK_PREFIX_SIZE)
        if prefix in _SEGMENT_PREFIXES:
            await store.delete_object(job, name)
            result.removed += 1
            continue
        if prefix != packs.PACK_PREFIX or size > PACK_MAX_SIZE:
            continue
        try:
            tail = await store.get_object(job, name, size - 4, 4)
            length = packs.header_length(tail, size)
            header = await store.get_object(job, name, size - 4 - length, length)
            entries = packs.open_header(key.pack_header_key, header, size)
        except (FormatError, AuthenticationError) as e:
            log.warning("object %s at the host is not a pack of this job: %s", name, e)
            continue
        journal.record_pack(
            name, size, [(e.chunk_id, e.offset, e.blob_len, e.plain_len) for e in entries]
        )
        result.adopted += 1
    if result.adopted:
        log.info("adopted %d packs the host held but the journal had not recorded", result.adopted)
    if result.removed:
        log.info("removed %d segments left by an interrupted publication", result.removed)
    return result


_SEGMENT_PREFIXES = {
    CATALOG_MAGIC + bytes([FORMAT_VERSION]),
    OBJECT_LIST_MAGIC + bytes([FORMAT_VERSION]),
}


async def _referenced_segments(store: Store, job: str) -> set[str]:
    """Names of every catalog and object-list segment some manifest of the job names."""
    names: set[str] = set()
    for key in await store.list_manifests(job):
        body = manifest.parse(await store.get_manifest(job, *key)).body
        names.update(ref.name for ref in (*body.catalog, *body.object_lists))
    return names
