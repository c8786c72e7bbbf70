"""Leases: which agent runs a job of a copy now, so that a dead agent's jobs pass to another.

A lease is a series of copy records ``leases/<job>`` (stores/base.py, clause 7); the newest
record says who holds the job::

    {"agent": "agent-2", "epoch": 7, "session": "<16 random bytes, hex>",
     "state": "held" | "released" | "done", "time": "<RFC 3339, for people>"}

The **epoch** of a lease is the number of the record by which it was claimed: claims are
exclusive puts of n+1, so epochs are unique per job and grow with each claim; renewals and the
release copy it. Every manifest the holder publishes carries it (protocol/SPEC.md 12.2), and the
head of a job is its manifest of highest (epoch, sequence).

Rules, each with its reason:

1. **Claim** by putting record n+1, exclusively: of two agents claiming at once, one gets
   ManifestExistsError. Where the store cannot put exclusively (S3 without If-None-Match), the
   claimer waits ``settle_seconds`` and reads the series again: it holds the job only if the
   newest record is still its own, which closes the HEAD-then-PUT race unless a write takes
   longer than the settling delay.
2. **Renew** every ``lease_seconds / 3`` by putting record n+1 of one's own, which counts only
   if it is then the newest (a taker prunes old numbers, which a stale holder could otherwise
   fill); older records are deleted (two are kept), so a job costs a few small keys, not one
   per renewal.
3. **Expire by observation, not by clocks.** An agent takes a job over only after it has *seen*
   the newest record unchanged for ``lease_seconds`` of its own monotonic clock. No two hosts'
   clocks are compared, so skew cannot expire a live lease; the ``time`` field is for people.
4. **Fence oneself.** A holder that has not managed to renew for ``lease_seconds / 2`` (counted
   from the start of its last successful renewal) stops the job: by the time another agent can
   have seen the lease unchanged for a whole ``lease_seconds``, the holder has stopped writing.
   A holder that finds a record of another agent on top of its own has lost the job and stops.
5. **The owner restarting** (same agent name, new session) takes its own job back at once: an
   agent name runs in one process at a time (the state directory's lock says so on one host).
6. **Release** with a last record: ``released`` (the job may be claimed at once) or ``done``.

7. **Fence every write that counts.** The holder's store (``FencedStore``) reads the job's newest
   lease record before and after each manifest it puts: a record of another session or epoch on
   top means the job was taken over, and LeaseLostError stops it (exit 26 for the agent) before
   it records anything in the copy manifest. An object is put after the same check whenever the
   lease is overdue (unrenewed for half a lease: the holder was paused, or cut off), so a holder
   that wakes after a takeover stores nothing more; otherwise objects go unchecked (renewals
   run every third of a lease).

A holder paused longer than ``lease_seconds / 2`` (SIGSTOP, a VM frozen) may still, on waking,
put one manifest before its check: it is stored under its own epoch, never over the taker's
key, and it is never the job's head once the taker stored anything (its epoch is lower); verify
lists it as superseded. Two processes started with the same agent name on two hosts can run one
job twice at once (rule 5); that costs uploads, never a stored object or a manifest.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from transferd.errors import (
    FormatError,
    LeaseLostError,
    ManifestExistsError,
    ObjectNotFoundError,
    StoreError,
    TransferdError,
)
from transferd.stores.base import CopyStore

log = logging.getLogger(__name__)

HELD, RELEASED, DONE = "held", "released", "done"
KEEP_RECORDS = 2


@dataclass(frozen=True)
class LeaseRecord:
    agent: str
    session: str
    state: str
    time: str = ""
    epoch: int = 0
    """The number of the record that claimed the lease (0 in records of older versions)."""

    def to_bytes(self) -> bytes:
        doc = {"agent": self.agent, "epoch": self.epoch, "session": self.session,
               "state": self.state, "time": self.time}  # fmt: skip
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LeaseRecord:
        try:
            doc = json.loads(data)
            epoch = doc.get("epoch", 0)
            if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
                raise TypeError
            record = cls(str(doc["agent"]), str(doc["session"]), str(doc["state"]),
                         str(doc.get("time", "")), epoch)  # fmt: skip
        except (ValueError, KeyError, TypeError):
            raise FormatError(
                "a lease record is not {agent, epoch, session, state, time}"
            ) from None
        if record.state not in (HELD, RELEASED, DONE):
            raise FormatError(f"a lease record has unknown state {record.state!r}")
        return record


@dataclass
class Lease:
    """A job this agent holds: the number of its newest record, and when it last renewed."""

    job: str
    sequence: int
    renewed: float
    """Monotonic time at which the last successful renewal (or the claim) was started."""
    epoch: int = 0
    """The number of the claiming record: what every manifest of this holder carries."""
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""
    taken_over: bool = False
    """Lost to another agent (not merely unrenewable): the holder was paused or cut off."""


@dataclass
class _Seen:
    sequence: int
    since: float


class Leases:
    """The leases of one copy, as one agent (name, session) sees and takes them."""

    def __init__(
        self,
        store: CopyStore,
        copy: str,
        agent: str,
        *,
        lease_seconds: float,
        settle_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        session: str | None = None,
        now_text: Callable[[], str] = lambda: "",
    ) -> None:
        self.store, self.copy, self.agent = store, copy, agent
        self.session = session or os.urandom(16).hex()
        self.lease_seconds, self.settle_seconds = lease_seconds, settle_seconds
        self._clock, self._sleep, self._now_text = clock, sleep, now_text
        self._seen: dict[str, _Seen] = {}

    def _series(self, job: str) -> str:
        return f"leases/{job}"

    async def newest(self, job: str) -> tuple[int, LeaseRecord | None]:
        """(number, record) of the job's newest lease record; (0, None) when it has none. The
        observation also starts or continues this agent's expiry count for the job (rule 3)."""
        sequences = await self.store.list_copy_records(self.copy, self._series(job))
        number, record = 0, None
        for candidate in reversed(sequences):
            try:
                data = await self.store.get_copy_record(self.copy, self._series(job), candidate)
            except ObjectNotFoundError:  # pruned while we listed: look at the next one down
                continue
            number, record = candidate, _parse(data, job, candidate)
            break
        seen = self._seen.get(job)
        if seen is None or seen.sequence != number:
            self._seen[job] = _Seen(number, self._clock())
        return number, record

    def unchanged_for(self, job: str) -> float:
        seen = self._seen.get(job)
        return 0.0 if seen is None else self._clock() - seen.since

    async def try_claim(self, job: str, *, own: bool) -> Lease | None:
        """Take the job if it is free for this agent; None when another holds it (or won)."""
        number, record = await self.newest(job)
        if record is not None and record.state == DONE:
            return None
        patient = self.unchanged_for(job) >= self.lease_seconds
        if record is None:
            free = own or patient  # another agent's job it never started: wait a lease
        else:
            free = (
                record.state == RELEASED
                or (record.agent == self.agent and record.session != self.session)
                or patient
            )
        if not free:
            return None
        silent = self.unchanged_for(job)
        started = self._clock()
        if not await self._put(job, number + 1, HELD, epoch=number + 1):
            return None
        await self._sleep(self.settle_seconds)
        latest, holder = await self.newest(job)
        if latest != number + 1 or holder is None or holder.session != self.session:
            return None
        await self._prune(job, latest)
        if record is not None and record.agent != self.agent and record.state == HELD:
            log.warning(
                "taking over job %s from agent %s: its lease was not renewed for %.0f s",
                job, record.agent, silent,
            )  # fmt: skip
        return Lease(job, latest, started, epoch=latest)

    async def renew(self, lease: Lease) -> bool:
        """Put the next record; False when another agent's record took its place (lost)."""
        started = self._clock()
        if not await self._put_next(lease, HELD):
            return False
        # The number may have been free only because the taker pruned it (rule 2): a renewal
        # counts only if it is the newest record.
        latest, holder = await self.newest(lease.job)
        if latest != lease.sequence or holder is None or holder.session != self.session:
            return False
        lease.renewed = started
        await self._prune(lease.job, lease.sequence)
        return True

    async def keep(self, lease: Lease) -> None:
        """Renew until cancelled; set ``lease.lost`` (and return) when the lease is lost or
        could not be renewed for half a lease (rule 4)."""
        while True:
            await self._sleep(self.lease_seconds / 3)
            try:
                if not await self.renew(lease):
                    try:
                        await self.still_held(lease)  # says who holds it now, and sets lost
                    except LeaseLostError:
                        return
                    lease.reason = "another agent holds its lease now"
                    lease.taken_over = True
                    lease.lost.set()
                    return
            except StoreError as e:
                log.warning("could not renew the lease of job %s: %s", lease.job, e.message)
            if self._clock() - lease.renewed > self.lease_seconds / 2:
                lease.reason = f"its lease could not be renewed for {self.lease_seconds / 2:.0f} s"
                lease.lost.set()
                return

    async def release(self, lease: Lease, state: str = RELEASED) -> bool:
        """Put the last record; False when another agent's record is on top (nothing to release)."""
        if not await self._put_next(lease, state):
            return False
        await self._prune(lease.job, lease.sequence)
        return True

    async def _put_next(self, lease: Lease, state: str) -> bool:
        """Put the lease's next record and count it; False when the number is another's.

        A put of this holder's whose answer was lost (a renewal cancelled or timed out while on
        the wire) may have stored record n+1 uncounted: the next put finds its own record in the
        way and goes on above it, rather than take it for a takeover, or leave a job finished
        looking held."""
        for _ in range(8):
            if await self._put(lease.job, lease.sequence + 1, state, epoch=lease.epoch):
                lease.sequence += 1
                return True
            number, record = await self.newest(lease.job)
            ours = record is not None and (record.session, record.epoch, record.state) == (
                self.session,
                lease.epoch,
                HELD,
            )
            if not ours or number <= lease.sequence:
                return False
            lease.sequence = number
        return False

    def overdue(self, lease: Lease) -> bool:
        """Whether ``lease`` went unrenewed for half a lease by this agent's clock: long enough
        that it may have passed to another (paused, a frozen VM), too short for another agent
        to have taken it over yet (rule 3 needs a whole lease)."""
        return self._clock() - lease.renewed > self.lease_seconds / 2

    async def still_held(self, lease: Lease) -> None:
        """LeaseLostError unless the job's newest lease record is still this holder's (rule 7):
        the same session and epoch, held."""
        _, record = await self.newest(lease.job)
        if record is not None and (record.session, record.epoch, record.state) == (
            self.session,
            lease.epoch,
            HELD,
        ):
            return
        if record is None:
            why = "its lease records are gone"
        elif record.session == self.session:
            why = f"its lease is {record.state} at epoch {record.epoch}"
        else:
            why = f"agent {record.agent} took over at epoch {record.epoch}"
        lease.reason = f"{why} while this agent (epoch {lease.epoch}) was paused or cut off"
        lease.taken_over = True
        lease.lost.set()
        raise lost_error(lease)

    async def _put(self, job: str, number: int, state: str, *, epoch: int) -> bool:
        record = LeaseRecord(self.agent, self.session, state, self._now_text(), epoch)
        try:
            await self.store.put_copy_record(
                self.copy, self._series(job), number, record.to_bytes()
            )
        except ManifestExistsError:
            return False
        return True

    async def _prune(self, job: str, newest: int) -> None:
        try:
            for number in await self.store.list_copy_records(self.copy, self._series(job)):
                if number <= newest - KEEP_RECORDS:
                    await self.store.delete_copy_record(self.copy, self._series(job), number)
        except StoreError as e:  # pruning is housekeeping: the next renewal tries again
            log.info("could not prune old lease records of job %s: %s", job, e.message)


def lost_error(lease: Lease) -> LeaseLostError:
    """The error a job ends with once its lease is lost; ``taken_over`` says whether another
    agent holds it now (the agent then stops: exit 26) or it only could not be renewed."""
    if not lease.taken_over:
        return LeaseLostError(f"job {lease.job}: {lease.reason}", job=lease.job)
    return LeaseLostError(
        f"job {lease.job}: {lease.reason}; stopping (nothing it wrote after that counts)",
        hint="the job goes on under the agent that holds it now; look at why this agent "
        "stalled (a frozen VM, a stopped process, a cut link) before starting it again",
        job=lease.job,
        taken_over=True,
    )


def _parse(data: bytes, job: str, number: int) -> LeaseRecord:
    try:
        return LeaseRecord.from_bytes(data)
    except TransferdError as e:
        raise FormatError(f"lease record {number} of job {job}: {e.message}") from None
