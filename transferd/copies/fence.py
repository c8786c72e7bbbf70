"""The store a leased job is sent through: its writes that count are fenced by the lease.

An agent sends a job as ``transferd send`` does, through a store that knows the job's lease
(copies/leases.py, rule 7): every manifest of the job is put under the lease's epoch, and the
lease is read before and after the put. A holder that finds another agent's record on top (it was
paused, or cut off, long enough for a takeover) stops with LeaseLostError at its next manifest,
before anything is recorded in the copy manifest; whatever it put is stored under its own,
older epoch and is never the job's head (protocol/SPEC.md 12.2). An object is put after the
same check once the lease is overdue (half a lease unrenewed: the process was paused, or cut
off), so a holder that wakes after a takeover starts no new write; while the lease is fresh no
other agent can hold it, and objects go unchecked.

That leaves the one upload in flight when the process was paused: it completes as the process
wakes, after the takeover. Such a put, which ends with the lease overdue, is followed by a check
too, and if the job was taken over the object is *withdrawn*, but only when that is safe: the
taker has finished (its lease record says done) and no manifest of the job names the object, so
no one will ever adopt it. While the taker still runs it may have adopted the object, which then
stays (verify would name it, unreferenced, if the taker did not).
"""

from __future__ import annotations

import asyncio
import logging

from transferd.copies.leases import DONE, Lease, Leases, lost_error
from transferd.core import manifest, objectlist
from transferd.core.keys import SenderPublicKey
from transferd.core.manifest import ManifestKey
from transferd.errors import FormatError, IntegrityError, LeaseLostError, LocalProtocolError
from transferd.stores.base import Store
from transferd.stores.forward import ForwardingStore

log = logging.getLogger(__name__)


class FencedStore(ForwardingStore):
    """A Store whose puts for ``lease.job`` are fenced by the lease."""

    def __init__(self, inner: Store, leases: Leases, lease: Lease, sender: SenderPublicKey) -> None:
        super().__init__(inner)
        self.leases, self.lease, self.sender = leases, lease, sender
        self.unsettled: set[str] = set()
        """Objects whose put did not return (cancelled when the lease was found lost): the
        store may still complete them (S3Store shields its uploads)."""

    def _check_lost(self) -> None:
        if self.lease.lost.is_set():
            raise lost_error(self.lease)

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        self._check_lost()
        if self.leases.overdue(self.lease):
            await self.leases.still_held(self.lease)
        # Unsettled until it is known to have landed while the lease held: a put cancelled, or
        # one that returned after a pause, is looked at again (withdraw_unsettled, _withdraw).
        self.unsettled.add(name)
        await self.inner.put_object(job, name, data)
        if self.leases.overdue(self.lease):  # it may have been in flight across a pause
            try:
                await self.leases.still_held(self.lease)
            except LeaseLostError:
                await self._withdraw(job, name)
                self.unsettled.discard(name)
                raise
        self.unsettled.discard(name)

    async def withdraw_unsettled(self, settle_seconds: float) -> None:
        """After the job was found taken over: the puts that never returned may still land;
        after ``settle_seconds``, withdraw those that did (``_withdraw``'s rule)."""
        if not self.unsettled or not self.lease.taken_over:
            return
        await asyncio.sleep(settle_seconds)
        job = self.lease.job
        for name in sorted(await self.inner.has_objects(job, sorted(self.unsettled))):
            await self._withdraw(job, name)
        self.unsettled.clear()

    async def _withdraw(self, job: str, name: str) -> None:
        """Remove ``name``, put after the job was taken over, if the taker is done and no
        manifest names it (module docstring); else leave it and say so."""
        _, record = await self.leases.newest(job)
        if record is not None and record.state == DONE and not await self._named(job, name):
            await self.inner.delete_object(job, name)
            log.warning("job %s: removed object %s, stored as this agent woke after the job "
                        "was taken over", job, name)  # fmt: skip
            return
        log.warning("job %s: object %s was stored as this agent woke after the job was taken "
                    "over; the agent that holds the job may adopt it", job, name)  # fmt: skip

    async def _named(self, job: str, name: str) -> bool:
        """Whether a manifest of ``job`` by the sender names ``name`` (segment or pack)."""
        try:
            for key in await self.inner.list_manifests(job):
                body = manifest.verify(await self.inner.get_manifest(job, *key), self.sender).body
                if any(r.name == name for r in (*body.catalog, *body.object_lists)):
                    return True
                for ref in body.object_lists:
                    packs = objectlist.decode_segment(await self.inner.get_object(job, ref.name))
                    if any(p.name == name for p in packs):
                        return True
        except (FormatError, IntegrityError):
            return True  # cannot tell: keep it
        return False

    async def put_manifest(self, job: str, sequence: int, data: bytes, epoch: int = 0) -> None:
        if job != self.lease.job:
            raise LocalProtocolError(f"a send of job {self.lease.job} put a manifest of {job}")
        if epoch != self.lease.epoch:
            raise LocalProtocolError(
                f"manifest {ManifestKey(sequence, epoch)} of job {job} is not of this holder's "
                f"epoch {self.lease.epoch}"
            )
        self._check_lost()
        await self.leases.still_held(self.lease)
        await self.inner.put_manifest(job, sequence, data, epoch)
        await self.leases.still_held(self.lease)
