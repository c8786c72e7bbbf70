"""Leases: which agent runs a job of a copy now, so that a dead agent's jobs pass to another.

A lease is a series of copy records ``leases/<job>`` (stores/base.py, clause 7); the newest
record says who holds the job::

    {"agent": "agent-2", "session": "<16 random bytes, hex>", "state": "held" | "released" | "done",
     "time": "<RFC 3339, for people>"}

Rules, each with its reason:

1. **Claim** by putting record n+1, exclusively: of two agents claiming at once, one gets
   ManifestExistsError. Where the store cannot put exclusively (S3 without If-None-Match), the
   claimer waits ``settle_seconds`` and reads the series again: it holds the job only if the
   newest record is still its own, which closes the HEAD-then-PUT race unless a write takes
   longer than the settling delay.
2. **Renew** every ``lease_seconds / 3`` by putting record n+1 of one's own; older records are
   deleted (two are kept), so a job costs a few small keys, not one per renewal.
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

What this does not protect against, said plainly (protocol/THREATS.md): a holder paused longer
than ``lease_seconds / 2`` (SIGSTOP, a VM frozen) that wakes and writes before noticing; two
processes started with the same agent name on two hosts. Either can leave a job run twice at
once, which costs uploads and may leave packs no manifest names (verify reports them as extra),
but never corrupts a stored object or a manifest: objects are content-addressed and manifests
are exclusive and signed.
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

    def to_bytes(self) -> bytes:
        doc = {"agent": self.agent, "session": self.session, "state": self.state, "time": self.time}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LeaseRecord:
        try:
            doc = json.loads(data)
            record = cls(str(doc["agent"]), str(doc["session"]), str(doc["state"]),
                         str(doc.get("time", "")))  # fmt: skip
        except (ValueError, KeyError, TypeError):
            raise FormatError("a lease record is not {agent, session, state, time}") from None
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
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""


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
        if not await self._put(job, number + 1, HELD):
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
        return Lease(job, latest, started)

    async def renew(self, lease: Lease) -> bool:
        """Put the next record; False when another agent's record took its place (lost)."""
        started = self._clock()
        if not await self._put(lease.job, lease.sequence + 1, HELD):
            return False
        lease.sequence += 1
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
                    lease.reason = "another agent holds its lease now"
                    lease.lost.set()
                    return
            except StoreError as e:
                log.warning("could not renew the lease of job %s: %s", lease.job, e.message)
            if self._clock() - lease.renewed > self.lease_seconds / 2:
                lease.reason = f"its lease could not be renewed for {self.lease_seconds / 2:.0f} s"
                lease.lost.set()
                return

    async def release(self, lease: Lease, state: str = RELEASED) -> None:
        if await self._put(lease.job, lease.sequence + 1, state):
            lease.sequence += 1
            await self._prune(lease.job, lease.sequence)

    async def _put(self, job: str, number: int, state: str) -> bool:
        record = LeaseRecord(self.agent, self.session, state, self._now_text())
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


def _parse(data: bytes, job: str, number: int) -> LeaseRecord:
    try:
        return LeaseRecord.from_bytes(data)
    except TransferdError as e:
        raise FormatError(f"lease record {number} of job {job}: {e.message}") from None
