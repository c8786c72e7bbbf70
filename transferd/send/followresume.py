"""Before a follow run goes on: the newest manifest is the truth, and what no manifest names goes.

A follow run killed after uploading a segment's packs, or the segment, or a list, and before the
manifest naming them, leaves objects at the host that no manifest names. The changes they hold
were never confirmed to the slot, so the slot sends them again and they are sealed anew (with
new nonces, so under new names): the leftovers are deleted, as send/resume.py deletes the
segments of an interrupted publication, and a verifier finds no extra object.

Kept: every object some manifest names (catalog segments, object and change lists), every
change segment of the newest manifest's lists, and every pack the newest manifest lists (the
journal's packs, listed by the snapshot's manifest, and the change packs the follow state
records under an index below the newest manifest's pack count).
"""

from __future__ import annotations

import logging

from transferd.core import changes, manifest, objectlist
from transferd.core.changes import CHANGE_LIST_MAGIC, CHANGE_SEGMENT_MAGIC, ChangeRef
from transferd.core.constants import CATALOG_MAGIC, FORMAT_VERSION, OBJECT_LIST_MAGIC, PACK_MAGIC
from transferd.core.manifest import SignedManifest
from transferd.core.pgoutput import parse_lsn
from transferd.errors import IntegrityError
from transferd.send.followpublish import _read
from transferd.send.followstate import FollowState
from transferd.send.journal import Journal
from transferd.stores.base import Store

log = logging.getLogger(__name__)

_SEGMENT_MAGICS = (CATALOG_MAGIC, OBJECT_LIST_MAGIC, CHANGE_LIST_MAGIC, CHANGE_SEGMENT_MAGIC)
_SEGMENTS = {m + bytes([FORMAT_VERSION]) for m in _SEGMENT_MAGICS}


async def reconcile(
    store: Store, newest: SignedManifest, journal: Journal, fs: FollowState
) -> ChangeRef:
    """Delete the leftovers; the newest manifest's last change segment (or, before any, a
    reference ending at the consistent point)."""
    job = newest.body.job
    referenced: set[str] = set()
    for key in await store.list_manifests(job):
        body = manifest.parse(await store.get_manifest(job, *key)).body
        referenced.update(
            r.name for r in (*body.catalog, *body.object_lists, *(body.changes or ()))
        )
    last: ChangeRef | None = None
    checker = changes.ChainChecker()
    for ref in newest.body.changes or ():
        entries = await _read(store, job, ref, changes.decode_list)
        checker.feed(entries)
        referenced.update(e.name for e in entries)
        last = entries[-1]
    for ref in newest.body.object_lists:  # every pack the newest manifest lists stays, whatever
        packs = await _read(store, job, ref, objectlist.decode_segment)  # the local state says
        referenced.update(p.name for p in packs)
    count = newest.body.totals.objects
    fs.forget_packs_from(count)
    removed = 0
    async for name, size in store.list_objects(job):
        if name in referenced or size < 5:
            continue
        prefix = await store.get_object(job, name, 0, 5)
        keep = prefix == PACK_MAGIC + bytes([FORMAT_VERSION]) and (
            journal.has_pack(name) or fs.pack_index(name) is not None
        )
        if keep or (prefix not in _SEGMENTS and prefix != PACK_MAGIC + bytes([FORMAT_VERSION])):
            continue
        await store.delete_object(job, name)
        removed += 1
    if removed:
        log.info("removed %d objects of an interrupted follow run, named by no manifest", removed)
    if last is None:
        consistent = fs.get("consistent_lsn")
        if consistent is None:
            raise IntegrityError(f"job {job}: the follow state has no consistent point")
        point = parse_lsn(consistent)
        return ChangeRef(b"\0" * 32, 0, point, point)
    return last
