"""Read and extend the chain of signed copy manifests (core/copy.py) in a store.

Several agents record finished jobs at once, so a new copy manifest is written optimistically:
read the newest (N), build N+1 from it with this job's entry updated, put it exclusively; when
another agent took N+1 first, start again from the new newest. Where the store cannot put
exclusively (stores/s3.py), the writer reads N+1 back after ``settle_seconds`` and starts again
if it is not its own. An update is lost only if both that and the settle check fail; the agent
then still sees the job as unrecorded and records it again (copies/agent.py), so the copy
manifest converges to naming every finished job.

Entries only move forward: a job's entry is replaced only by a newer manifest of that job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from transferd.core import copy as core_copy
from transferd.core.copy import CopyJobRef, CopyManifestBody, SignedCopyManifest
from transferd.core.keys import SenderPublicKey, SenderSecretKey
from transferd.core.manifest import SignedManifest
from transferd.errors import IntegrityError, ManifestExistsError, RollbackError, TransientStoreError
from transferd.stores.base import CopyStore

log = logging.getLogger(__name__)

SERIES = "manifests"
ATTEMPTS = 20


async def newest_copy_manifest(
    store: CopyStore, copy: str, sender: SenderPublicKey, copy_id: str
) -> SignedCopyManifest | None:
    """The newest copy manifest, checked: signed by ``sender``, of this copy, numbered as
    stored. None when the copy has none yet."""
    sequences = await store.list_copy_records(copy, SERIES)
    if not sequences:
        return None
    data = await store.get_copy_record(copy, SERIES, sequences[-1])
    signed = core_copy.verify(data, sender)
    if signed.body.sequence != sequences[-1]:
        raise RollbackError(
            f"copy manifest stored as {sequences[-1]} of copy {copy} says it is number "
            f"{signed.body.sequence}"
        )
    if signed.body.copy != copy or signed.body.copy_id != copy_id:
        raise IntegrityError(
            f"the copy manifests of {copy} at {store.description} belong to another copy "
            f"(id {signed.body.copy_id}, this copy secret gives {copy_id})",
            hint="check the copy name and the copy secret",
        )
    return signed


def done_jobs(signed: SignedCopyManifest | None) -> dict[str, int]:
    """Job name → newest recorded manifest sequence, for the jobs the copy manifest names done."""
    if signed is None:
        return {}
    return {j.job: j.sequence for j in signed.body.jobs if j.sequence is not None}


async def record_jobs(
    store: CopyStore,
    *,
    copy: str,
    copy_id: str,
    planned: Iterable[str],
    finished: dict[str, SignedManifest],
    sender: SenderSecretKey,
    created: Callable[[], str],
    settle_seconds: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> SignedCopyManifest:
    """Publish a copy manifest naming ``finished`` (job → its newest manifest) on top of the
    newest one; returns the copy manifest that records them (which may be another agent's)."""
    public = sender.public()
    planned = sorted(set(planned))
    for _ in range(ATTEMPTS):
        newest = await newest_copy_manifest(store, copy, public, copy_id)
        entries = {name: CopyJobRef(name) for name in planned}
        if newest is not None:
            entries.update({j.job: j for j in newest.body.jobs})
        changed = newest is None or set(entries) != {j.job for j in newest.body.jobs}
        for name, signed in finished.items():
            held = entries.get(name)
            if held is None or held.sequence is None or held.sequence < signed.body.sequence:
                entries[name] = CopyJobRef(name, signed.body.sequence, signed.digest)
                changed = True
        if not changed and newest is not None:
            return newest
        body = CopyManifestBody(
            copy=copy,
            copy_id=copy_id,
            sequence=1 if newest is None else newest.body.sequence + 1,
            created=created(),
            previous=None if newest is None else newest.digest,
            sender=public.to_text(),
            jobs=tuple(entries[n] for n in sorted(entries)),
        )
        data = core_copy.sign(body, sender)
        try:
            await store.put_copy_record(copy, SERIES, body.sequence, data)
        except ManifestExistsError:
            continue  # another agent published this number first: build on top of it
        await sleep(settle_seconds)
        if await store.get_copy_record(copy, SERIES, body.sequence) == data:
            return core_copy.parse(data)
        log.info(
            "copy manifest %d of %s was replaced by another agent's; again", body.sequence, copy
        )
    raise TransientStoreError(
        f"could not publish a copy manifest of {copy} after {ATTEMPTS} attempts: other agents "
        "kept publishing first"
    )
