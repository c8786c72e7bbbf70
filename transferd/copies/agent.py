"""One agent of a copy: run the jobs the plan gives it, then take over those of dead agents.

The loop, every ``poll`` seconds (lease_seconds / 6, at most 10 s):

1. read the newest copy manifest: the jobs it names finished are done;
2. if a job this process finished is not recorded there (another agent's copy manifest won a
   race), record it again (copies/manifests.py);
3. while there is room (``parallel`` jobs at once), claim a job that is not done: its own jobs
   first, in plan order, then with ``takeover`` any other agent's job whose lease this agent
   has seen unchanged for a whole lease (copies/leases.py);
4. stop when every job of the plan is done (or, without ``takeover``, every job of its own), or
   when the only ones left are jobs this process gave up on.

Running a job is ``transferd send`` with the job's key derived from the copy secret
(core/copy.py), so taking over is resuming: ``reconcile`` adopts the packs the dead agent stored
by opening their headers, and only what is missing is read and sent again. While the job runs
its lease is renewed; a lost lease stops the job at once (it stays resumable). A finished job is
recorded in the copy manifest, then its lease is released as done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from transferd.copies.fence import FencedStore
from transferd.copies.leases import DONE, RELEASED, Lease, Leases, lost_error
from transferd.copies.manifests import done_jobs, newest_copy_manifest, record_jobs
from transferd.copies.plan import CopyPlan
from transferd.core.copy import CopySecret, SignedCopyManifest
from transferd.core.keys import RecipientKey, SenderSecretKey
from transferd.core.manifest import SignedManifest
from transferd.errors import (
    LeaseLostError,
    SourceError,
    StoreError,
    TransferdError,
    TransientStoreError,
)
from transferd.send.compose import SendOptions, compose_send
from transferd.send.run import SendResult, send, utc_now
from transferd.send.state import provision_job_key
from transferd.sources.base import Source
from transferd.stores.base import CopyStore
from transferd.stores.open import open_store
from transferd.stores.s3probe import shared_writes_needed

log = logging.getLogger(__name__)

ATTEMPTS = 3
"""Runs of one job in one agent process before it gives up on it: a source that fails three
times in a row needs an operator, not a fourth run."""


@dataclass
class JobOutcome:
    job: str
    sequence: int
    manifest_sha256: str
    taken_over_from: str | None
    packs_adopted: int
    bytes_sent: int
    seconds: float

    def to_json(self) -> dict[str, object]:
        return dict(vars(self))


@dataclass
class AgentResult:
    agent: str
    copy: str
    jobs: list[JobOutcome] = field(default_factory=list)
    given_up: dict[str, str] = field(default_factory=dict)
    copy_manifest: int | None = None
    copy_complete: bool = False


SourceOpener = Callable[[str], Source]


@dataclass
class Agent:
    plan: CopyPlan
    name: str
    state_dir: Path
    store: CopyStore
    sender: SenderSecretKey
    secret: CopySecret
    recipients: list[RecipientKey]
    options: SendOptions
    open_source: SourceOpener
    takeover: bool = True
    parallel: int = 1
    clock: Callable[[], float] = time.time
    leases: Leases = field(init=False)
    _finished: dict[str, SignedManifest] = field(default_factory=dict, init=False)
    _attempts: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.leases = Leases(
            self.store, self.plan.name, self.name,
            lease_seconds=self.plan.lease_seconds, settle_seconds=self.plan.settle_seconds,
            now_text=lambda: utc_now(self.clock),
        )  # fmt: skip
        self.copy_id = self.secret.copy_id(self.plan.name)

    @property
    def poll(self) -> float:
        return min(10.0, max(0.1, self.plan.lease_seconds / 6))

    async def run(self) -> AgentResult:
        plan, result = self.plan, AgentResult(self.name, self.plan.name)
        # Leases and copy manifests are exclusive writes: several agents need them atomic.
        await shared_writes_needed(self.store, len(plan.agents))
        own = list(plan.agents.get(self.name, ()))
        order = own + [j.name for j in plan.jobs if j.name not in own]
        running: dict[str, asyncio.Task[JobOutcome]] = {}
        try:
            while True:
                copy_manifest = await self._newest()
                done = done_jobs(copy_manifest)
                if any(done.get(j, (0, 0)) < m.key.rank for j, m in self._finished.items()):
                    copy_manifest = await self._record({})
                    done = done_jobs(copy_manifest)
                result.copy_manifest = copy_manifest.body.sequence if copy_manifest else None
                result.copy_complete = all(j.name in done for j in plan.jobs)
                wanted = order if self.takeover else own
                left = [j for j in wanted if j not in done and j not in result.given_up]
                if not left and not running:
                    return result
                for job in left:
                    if len(running) >= self.parallel:
                        break
                    if job in running:
                        continue
                    lease = await self.leases.try_claim(job, own=job in own)
                    if lease is not None:
                        running[job] = asyncio.create_task(self._run_job(job, lease))
                if running:
                    await asyncio.wait(
                        running.values(), timeout=self.poll, return_when=asyncio.FIRST_COMPLETED
                    )
                else:
                    await asyncio.sleep(self.poll)
                for job, task in list(running.items()):
                    if task.done():
                        del running[job]
                        self._collect(job, task, result)
        finally:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)

    def _collect(self, job: str, task: asyncio.Task[JobOutcome], result: AgentResult) -> None:
        try:
            result.jobs.append(task.result())
            return
        except LeaseLostError as e:
            if e.fields.get("taken_over"):
                raise  # this agent was paused or cut off: its other jobs may be taken too
            log.warning("job %s stopped: %s", job, e.message)
            return
        except TransientStoreError as e:
            message = e.message
        except StoreError:
            raise  # refused credentials, a missing bucket: every job would fail the same way
        except TransferdError as e:
            message = e.message
        self._attempts[job] = self._attempts.get(job, 0) + 1
        if self._attempts[job] >= ATTEMPTS:
            log.error("giving up on job %s after %d runs: %s", job, ATTEMPTS, message)
            result.given_up[job] = message
        else:
            log.warning("job %s failed (run %d of %d): %s", job, self._attempts[job], ATTEMPTS,
                        message)  # fmt: skip

    async def _newest(self) -> SignedCopyManifest | None:
        return await newest_copy_manifest(
            self.store, self.plan.name, self.sender.public(), self.copy_id
        )

    async def _record(self, finished: dict[str, SignedManifest]) -> SignedCopyManifest:
        self._finished.update(finished)
        return await record_jobs(
            self.store,
            copy=self.plan.name,
            copy_id=self.copy_id,
            planned=[j.name for j in self.plan.jobs],
            finished=dict(self._finished),
            sender=self.sender,
            created=lambda: utc_now(self.clock),
            settle_seconds=self.plan.settle_seconds,
        )

    async def _run_job(self, job: str, lease: Lease) -> JobOutcome:
        started = time.monotonic()
        own = job in self.plan.agents.get(self.name, ())
        previous_holder = None if own else self.plan.owner(job)
        log.info("job %s: claimed (lease record %d, epoch %d)", job, lease.sequence, lease.epoch)
        keeper = asyncio.create_task(self.leases.keep(lease))
        released = False
        try:
            provision_job_key(
                self.state_dir, job, self.secret.job_key(job), self.secret.job_id(job)
            )
            source = self.open_source(self.plan.job(job).source)
            sending = asyncio.create_task(self._send(job, source, lease))
            lost = asyncio.create_task(lease.lost.wait())
            await asyncio.wait({sending, lost}, return_when=asyncio.FIRST_COMPLETED)
            lost.cancel()
            if not sending.done():
                sending.cancel()
                await asyncio.gather(sending, return_exceptions=True)
                released = True  # not ours any more: release nothing
                raise lost_error(lease)
            # Stop renewing before the last records: a renewal racing the release could
            # otherwise land on top of "done".
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            outcome = sending.result()
            if outcome.failures:
                paths = ", ".join(
                    p.decode("utf-8", "backslashreplace") for p, _ in outcome.failures[:3]
                )
                raise SourceError(f"job {job} left {len(outcome.failures)} items uncopied: {paths}")
            copy_manifest = await self._record({job: outcome.manifest})
            await self.leases.release(lease, DONE)
            released = True
            log.info(
                "job %s: manifest %d recorded in copy manifest %d",
                job, outcome.manifest.body.sequence, copy_manifest.body.sequence,
            )  # fmt: skip
            return JobOutcome(
                job=job,
                sequence=outcome.manifest.body.sequence,
                manifest_sha256=outcome.manifest.digest,
                taken_over_from=previous_holder,
                packs_adopted=outcome.reconciled.adopted,
                bytes_sent=outcome.counters.bytes_sent,
                seconds=round(time.monotonic() - started, 3),
            )
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            if not released:
                try:
                    await asyncio.shield(self.leases.release(lease, RELEASED))
                except StoreError as e:
                    log.info("could not release the lease of job %s: %s", job, e.message)

    async def _send(self, job: str, source: Source, lease: Lease) -> SendResult:
        options = self.options
        opened = open_store(
            self.plan.store, self.sender, options.ca_file, options.s3_config,
            lock=options.object_lock,
        )  # fmt: skip
        fenced = FencedStore(opened, self.leases, lease, self.sender.public())  # copies/fence.py
        composed = compose_send(options, source=source, to=fenced, sender=self.sender)
        try:
            return await send(
                source=composed.source,
                store=composed.store,
                job=job,
                sender=self.sender,
                recipients=self.recipients,
                state_dir=self.state_dir,
                config=composed.config,
                clock=self.clock,
                require_pq=composed.options.require_pq,  # [pipeline] require_pq of the plan
                epoch=lease.epoch,
            )
        except (asyncio.CancelledError, LeaseLostError):
            # Taken over while paused: an upload in flight may land now; withdraw it if safe.
            await asyncio.shield(fenced.withdraw_unsettled(self.plan.settle_seconds + 1))
            raise
        finally:
            await composed.close()
