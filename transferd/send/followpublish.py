"""Publish a follow manifest: the snapshot's catalog as it is, the lists grown by a tail.

Manifest N+1 of a follow job (protocol/SPEC.md §11.5) is manifest N with new packs appended to
its object lists, new change segments appended to its change lists, and the totals moved on.
Neither the catalog nor a list segment already stored is rewritten, except the last ones of a
list, merged as a binary counter: a new tail segment is added, then while the last segment holds
at least as many entries as the one before it (and both fit one segment), the two are replaced by
their concatenation. Every list then has O(log n) segments, each entry is rewritten about log2(n)
times over a job's life, and a manifest published every few seconds for a month stays a few KiB.

Merging reads back the two segments from the store, checked against their SHA-256, and writes the
merged one; nothing of them is kept locally. The write order is SPEC.md §12's: every segment the
manifest names is acknowledged before the manifest is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from transferd.core import changes, manifest, objectlist
from transferd.core.changes import CHANGE_LIST_ENTRY_SIZE, CHANGE_LIST_MAX_ENTRIES, ChangeRef
from transferd.core.constants import OBJECT_LIST_ENTRY_SIZE, OBJECT_LIST_MAX_ENTRIES
from transferd.core.keys import SenderSecretKey
from transferd.core.manifest import SignedManifest, Totals
from transferd.core.objectlist import ObjectRef
from transferd.errors import IntegrityError
from transferd.stores.base import Store

T = TypeVar("T")
HEADER = 9
"""Bytes before a list segment's first entry: magic, version, count."""


async def publish_follow(
    store: Store,
    previous: SignedManifest,
    *,
    packs: list[ObjectRef],
    segments: list[ChangeRef],
    sender: SenderSecretKey,
    created: str,
) -> SignedManifest:
    """Manifest ``previous.sequence + 1``: ``previous`` with ``packs`` and ``segments`` added."""
    body = previous.body
    job = body.job
    object_lists = list(body.object_lists)
    if packs:
        object_lists = await _append(
            store, job, object_lists, packs, OBJECT_LIST_ENTRY_SIZE, OBJECT_LIST_MAX_ENTRIES,
            objectlist.encode_segment, objectlist.decode_segment,
        )  # fmt: skip
    change_lists = list(body.changes or ())
    if segments:
        change_lists = await _append(
            store, job, change_lists, segments, CHANGE_LIST_ENTRY_SIZE, CHANGE_LIST_MAX_ENTRIES,
            changes.encode_list, changes.decode_list,
        )  # fmt: skip
    totals = Totals(
        body.totals.objects + len(packs), body.totals.stored_bytes + sum(p.size for p in packs)
    )
    new = replace(
        body,
        sequence=body.sequence + 1,
        created=created,
        previous=previous.digest,
        object_lists=tuple(object_lists),
        changes=tuple(change_lists) if change_lists else None,
        totals=totals,
    )
    data = manifest.sign(new, sender)
    await store.put_manifest(job, new.sequence, data)
    return manifest.parse(data)


def entries_in(ref: ObjectRef, entry_size: int) -> int:
    return (ref.size - HEADER) // entry_size


async def _append(
    store: Store,
    job: str,
    lists: list[ObjectRef],
    new: list[T],
    entry_size: int,
    most: int,
    encode: Callable[[list[T]], bytes],
    decode: Callable[[bytes], list[T]],
) -> list[ObjectRef]:
    """``lists`` with ``new`` appended as a binary counter. The merge is done before anything is
    written: a segment stored is always one the new manifest names."""
    lists = list(lists)
    for start in range(0, len(new), most):
        tail = new[start : start + most]
        while lists:
            before = entries_in(lists[-1], entry_size)
            if len(tail) < before or len(tail) + before > most:
                break
            tail = await _read(store, job, lists.pop(), decode) + tail
        lists.append(await _put(store, job, encode(tail)))
    return lists


async def _put(store: Store, job: str, data: bytes) -> ObjectRef:
    digest = hashlib.sha256(data).digest()
    await store.put_object(job, digest.hex(), data)
    return ObjectRef(digest, len(data))


async def _read(
    store: Store, job: str, ref: ObjectRef, decode: Callable[[bytes], list[T]]
) -> list[T]:
    data = await store.get_object(job, ref.name)
    if len(data) != ref.size or hashlib.sha256(data).digest() != ref.sha256:
        raise IntegrityError(
            f"list segment {ref.name} of job {job} at {store.description} is not the one its "
            "manifest names: the store altered it",
            hint="verify the job (transferd verify); the follow cannot publish over it",
        )
    return decode(data)
