"""One managed job: a task that runs ``send(...)`` until the copy is published, and its controls.

A run is one call of send/run.py's ``send``: it reconciles the journal with the host, then reads,
seals and uploads only what the host does not hold, then publishes a manifest. When a run fails on
something that may pass (the host unreachable after every retry, the disk at the host full, the
source down, the job locked by a process finishing), the task waits and runs again, from the
checkpoint, with a doubling delay. A refusal that will not pass by waiting (a wrong key, a
manifest that does not verify, a configuration error) ends the job as failed.

Each run reads a source object of its own, but a source that holds a consistent point is kept
open after a run that failed on the store, as the job's *keeper*, for as long as the daemon lives:
PostgreSQL's exported snapshot lives only in the transaction that exported it
(sources/postgres/snapshot.py ``SnapshotHolder``), and the next runs adopt it
(``PgOptions.snapshot``), so a store outage costs a retry and not a new snapshot: the tables already
read are reused, and one job never mixes two points in time. The keeper is closed when the job ends,
and when the source itself failed (the snapshot may be gone: the next run takes a new one).

Flow control goes through the job's ThrottledStore (stores/throttle.py) and the pipeline's own
pause: *pause* starts no new read and no new upload and lets the uploads in flight finish; *stop*
(daemon shutdown, cancel) drains the pipeline in one call (no new read or pack, the uploads in
flight finish up to a deadline, the entries read so far are recorded), then cancels the task.
Nothing is acknowledged that was not stored: the journal records an upload only after the store
returned (send/journal.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from transferd.core.keys import RecipientKey, SenderSecretKey, parse_recipient
from transferd.core.pgoutput import lsn_text
from transferd.daemon.definitions import DONE, FAILED, PAUSE, RUN, JobDefinition
from transferd.daemon.logs import current_job
from transferd.errors import (
    JobLockedError,
    SourceError,
    StateFullError,
    StoreFullError,
    TransferdError,
    TransientStoreError,
)
from transferd.send.compose import SendOptions, compose_send
from transferd.send.config import Counters, PipelineConfig
from transferd.send.pipeline import Pipeline
from transferd.send.resume import Reconciled
from transferd.send.run import SendResult, send
from transferd.sources.base import Source
from transferd.sources.open import open_source
from transferd.stores.base import Store
from transferd.stores.ratelimit import TokenBucket
from transferd.stores.throttle import FlowStats, ThrottledStore
from transferd.util.extras import needs
from transferd.util.rates import Estimate, RateWindow

if TYPE_CHECKING:
    from transferd.send.follow import Follow

log = logging.getLogger("transferd.daemon.job")

RETRYABLE = (TransientStoreError, StoreFullError, StateFullError, SourceError, JobLockedError)
"""Failures worth another run after a while; any other TransferdError ends the job. A full
store or state directory needs an operator to free space, and then the next run goes on."""
RETRY_MAX = 900.0
"""The longest wait between runs: a host down for a day is tried every 15 minutes."""

ACTIVE = ("queued", "reconciling", "sending", "publishing")
SENDING = ("sending", "publishing")
"""The phases in which a job has a rate and an ETA."""
PHASES = (*ACTIVE, "paused", "waiting", "stopping", "stopped", "done", "failed", "cancelled")


@dataclass
class JobEnv:
    """What every job of a daemon shares."""

    sender: SenderSecretKey
    state_dir: Path
    options: SendOptions
    """How every job's send runs (``[send]`` of the configuration)."""
    retry_delay: float
    default_limit: int
    bucket: TokenBucket
    """The process-wide bandwidth limit."""
    slots: asyncio.Semaphore
    """``max_jobs``: a job waits here (queued) for its turn."""
    save: Callable[[JobDefinition], None]


@dataclass
class Totals:
    """Counts summed over every run of the job in this process (the metrics are counters)."""

    bytes_read: int = 0
    bytes_sealed: int = 0
    bytes_sent: int = 0
    bytes_reused: int = 0
    bytes_deduplicated: int = 0
    entries: int = 0
    chunks_new: int = 0
    chunks_known: int = 0
    packs_sent: int = 0
    failures: int = 0
    uploads: int = 0
    upload_seconds: float = 0.0
    transient_errors: int = 0
    manifests: int = 0

    def plus(self, c: Counters, s: FlowStats) -> Totals:
        out = Totals(**{f.name: getattr(self, f.name) for f in fields(self)})
        for f in (
            "bytes_read",
            "bytes_sealed",
            "bytes_sent",
            "bytes_reused",
            "entries",
            "bytes_deduplicated",
        ):
            setattr(out, f, getattr(out, f) + getattr(c, f))
        for f in ("chunks_new", "chunks_known", "packs_sent", "failures"):
            setattr(out, f, getattr(out, f) + getattr(c, f))
        out.uploads += s.uploads
        out.upload_seconds += s.upload_seconds
        out.transient_errors += s.transient_errors
        out.manifests += s.manifests
        return out


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ManagedJob:
    def __init__(self, definition: JobDefinition, env: JobEnv) -> None:
        self.definition = definition
        self.env = env
        limit = definition.limit if definition.limit is not None else env.default_limit
        self.bucket = TokenBucket(limit)
        self.counters = Counters()
        """The current run's counters, or the last run's once it ended."""
        self.stats = FlowStats()
        """The current (or last) run's uploads."""
        self.earlier = Totals()
        """Totals of the runs before that one."""
        self.errors: collections.Counter[str] = collections.Counter()
        self.phase_seconds: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.source: Source | None = None
        """The current run's source."""
        self.keeper: Source | None = None
        """A source kept open because it holds the snapshot later runs adopt."""
        self.store: ThrottledStore | None = None
        self.pipeline: Pipeline | None = None
        self.task: asyncio.Task[None] | None = None
        self.total: int | None = None
        self.runs = 0
        self.window = RateWindow()
        """Samples of bytes sent and settled, once a second: the rate and ETA (util/rates.py)."""
        self.follow: Follow | None = None
        """A follow job's current run (send/follow.py): its status, and its cut-over."""
        self.cutover_wanted = False
        self._activity = definition.outcome or ("cancelled" if self.cancelled else "stopped")
        self._shown = self.phase
        self._since = time.monotonic()

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def paused(self) -> bool:
        return self.definition.desired == PAUSE

    @property
    def cancelled(self) -> bool:
        return self.definition.desired not in (RUN, PAUSE)

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    @property
    def phase(self) -> str:
        if self.paused and (self._activity in ACTIVE or not self.running) and not self._ended:
            return "paused"
        return self._activity

    @property
    def _ended(self) -> bool:
        return self._activity in ("done", "failed", "cancelled")

    def totals(self) -> Totals:
        return self.earlier.plus(self.counters, self.stats)

    def _set(self, activity: str) -> None:
        now = time.monotonic()
        self.phase_seconds[self._shown] += now - self._since
        self._since = now
        self._activity = activity
        self._shown = self.phase

    def tick(self) -> None:
        """Account time to the phase shown, and sample progress for the rate (once a second)."""
        self._set(self._activity)
        self.window.add(time.monotonic(), self.counters.bytes_sent, self.settled())

    def settled(self) -> int:
        """Source bytes of this run the store holds (util/rates.py ``settled``)."""
        return self.counters.settled

    def estimate(self) -> Estimate:
        """Rate and ETA from what the store acknowledged; none while the job does not send
        (paused, waiting, stopped, ended): a paused job has no rate, whatever it had before."""
        if self.phase not in SENDING:
            return Estimate(None, None)
        return self.window.estimate(self.total)

    @property
    def follows(self) -> bool:
        return bool((self.definition.postgres or {}).get("follow") is not None)

    def request_cutover(self) -> bool:
        """Ask a follow job to cut over (now, or as soon as its next run follows); False for a
        job that does not follow."""
        if not self.follows:
            return False
        self.cutover_wanted = True
        if self.follow is not None:
            self.follow.request_cutover()
        return True

    def follow_status(self) -> dict[str, object] | None:
        if not self.follows:
            return None
        from transferd.core.pgoutput import lsn_text

        f = self.follow
        if f is None:
            return {"phase": "waiting", "cutover_requested": self.cutover_wanted}
        s = f.status
        return {
            "phase": s.phase,
            "consistent_lsn": lsn_text(s.consistent_lsn),
            "published_lsn": lsn_text(s.published_lsn),
            "received_lsn": lsn_text(s.received_lsn),
            "lag_seconds": round(s.lag_seconds(), 3),
            "slot_unconfirmed_bytes": s.unconfirmed_bytes,
            "slot_retained_wal_bytes": s.retained_bytes,
            "segments": s.segments,
            "transactions": s.transactions,
            "changes": s.changes,
            "manifest": s.manifest,
            "cutover_requested": self.cutover_wanted,
            "cutover_lsn": None if s.cutover_lsn is None else lsn_text(s.cutover_lsn),
        }

    # --- controls -------------------------------------------------------------------------

    def launch(self) -> None:
        if not self.running:
            self.definition.outcome = None
            self._set("queued")
            self.task = asyncio.create_task(self._main(), name=f"job {self.name}")

    def pause(self) -> None:
        self.window.clear()  # after a resume, the rate is of the sending, not of the pause
        self.definition.desired = PAUSE
        if self.pipeline is not None:
            self.pipeline.pause()
        if self.store is not None:
            self.store.pause()
        self._set(self._activity)

    def resume(self) -> None:
        self.window.clear()
        self.definition.desired = RUN
        if self.pipeline is not None:
            self.pipeline.resume()
        if self.store is not None:
            self.store.resume()
        self._set(self._activity)

    def set_limit(self, rate: int | None) -> None:
        self.definition.limit = rate
        self.bucket.set_rate(rate if rate is not None else self.env.default_limit)

    async def stop(self, deadline: float) -> None:
        """Drain and end the task: no new read or upload, uploads in flight finish (up to
        ``deadline`` seconds), entries read so far are recorded, then the task is cancelled."""
        task = self.task
        if task is None or task.done():
            if self.cancelled and not self._ended:
                self._set("cancelled")  # a paused or waiting job that had no task
            return
        self._set("stopping")
        store, pipeline = self.store, self.pipeline
        if pipeline is not None:
            # Uploads held at a paused job's valve never started: none to wait for.
            paused = store is not None and store.paused and not store.stats.in_flight
            await pipeline.drain(0.0 if paused else deadline)
        if store is not None:  # publishing: the manifest or segment in flight finishes
            store.pause()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline):  # not wait_for: stores/ratelimit.py
                    await store.idle()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self.task = None
        self._set("cancelled" if self.cancelled else "stopped")

    async def close(self) -> None:
        """Release the sources (snapshot, connections): the job is over in this process."""
        for source in (self.source, self.keeper):
            if source is not None:
                await source.close()
        self.source = self.keeper = None

    async def _release_run_source(self, source_failed: bool) -> None:
        """After a failed run: keep its source if it holds a snapshot, else close it."""
        source, self.source = self.source, None
        if source_failed:
            if source is not None:
                await source.close()
            if self.keeper is not None:
                keeper, self.keeper = self.keeper, None
                await keeper.close()
        elif source is not None and source is not self.keeper:
            if self.keeper is None and getattr(source, "snapshot_id", None):
                self.keeper = source
            else:
                await source.close()

    def _open_source(self) -> Source:
        snapshot = getattr(self.keeper, "snapshot_id", None)
        if snapshot or self.definition.postgres is not None:
            with needs("postgres"):  # only for a PostgreSQL source
                from transferd.sources.postgres.source import PgOptions

            options = PgOptions.from_settings(self.definition.postgres, snapshot)
            return open_source(self.definition.source, postgres=options)
        return open_source(self.definition.source, azure=self.env.options.azure)

    # --- the task -------------------------------------------------------------------------

    async def _main(self) -> None:
        current_job.set(self.name)  # this task's context: every line it logs names the job
        async with self.env.slots:
            delay = self.env.retry_delay
            while True:
                try:
                    result = await self._run_once()
                except RETRYABLE as e:
                    self._failed_run(e)
                    log.warning("run failed, next run in %.0f s: %s", delay, e.message)
                    await self._release_run_source(isinstance(e, SourceError))
                    self._set("waiting")
                    await asyncio.sleep(delay)
                    delay = min(2 * delay, RETRY_MAX)
                    continue
                except TransferdError as e:
                    self._failed_run(e)
                    log.error("job failed: %s", e.message, extra={"hint": e.hint or ""})
                    self._end(FAILED, e.message)
                except Exception as e:  # a bug ends this job, not the daemon
                    self._failed_run(e)
                    log.exception("job failed on an unexpected error: a bug, please report it")
                    self._end(FAILED, f"unexpected error: {e!r}")
                else:
                    self._succeeded(result)
                break
        await self.close()

    async def _run_once(self) -> SendResult:
        d = self.definition
        if self.source is None:
            self.source = self._open_source()
        recipients = [parse_recipient(r) for r in d.recipients]
        composed = compose_send(
            self.env.options,
            source=self.source,
            to=d.store,
            sender=self.env.sender,
            buckets=[self.bucket, self.env.bucket],
            on_manifest=lambda: self._set("publishing"),
        )
        store = composed.flow
        if self.paused:
            store.pause()
        self.runs += 1
        self.earlier = self.totals()
        self.counters, self.stats = Counters(), store.stats
        self.window.clear()
        self.store = store
        self._set("reconciling")
        sizer = asyncio.create_task(self._measure(self.source))
        log.info(
            "run %d started",
            self.runs,
            extra={"source": self.source.description, "store": store.description},
        )
        try:
            if self.follows:
                return await self._follow_once(composed.store, composed.config, recipients)
            return await send(
                source=composed.source,
                store=composed.store,
                job=d.name,
                sender=self.env.sender,
                recipients=recipients,
                state_dir=self.env.state_dir,
                config=composed.config,
                counters=self.counters,
                on_pipeline=self._on_pipeline,
                require_pq=self.env.options.require_pq,
            )
        finally:
            sizer.cancel()
            self.pipeline = None
            self.store = None
            await composed.store.close()  # the source outlives the run: see _release_run_source

    async def _follow_once(
        self, store: Store, config: PipelineConfig, recipients: list[RecipientKey]
    ) -> SendResult:
        """A follow job's run: until its cut-over (``jobs cutover``), as ``send --follow``."""
        with needs("postgres"):  # psycopg2 and pypgoutput: the [postgres] extra
            from transferd.send.follow import Follow, FollowOptions
        from transferd.sources.postgres.source import PgOptions

        d = self.definition
        if self.source is not None:  # a follow takes its own snapshot, from its slot
            await self.source.close()
            self.source = None
        pg = PgOptions.from_settings(d.postgres)
        settings = dict(pg.follow or {})
        if settings.get("max_retained_wal") is None:
            settings.pop("max_retained_wal", None)
        follow = self.follow = Follow(
            spec=d.source, pg=pg, store=store, job=d.name, sender=self.env.sender,
            recipients=recipients, state_dir=self.env.state_dir, config=config,
            options=FollowOptions(**settings, require_pq=self.env.options.require_pq),
            counters=self.counters,
            on_pipeline=self._on_pipeline,
        )  # fmt: skip
        if self.cutover_wanted:
            follow.request_cutover()
        self._set("sending")
        result = await follow.run()
        log.info("copy complete up to LSN %s", lsn_text(result.cutover_lsn))
        return SendResult(d.name, result.manifest, result.counters, Reconciled(), [],
                          result.seconds)  # fmt: skip

    def _on_pipeline(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        if self.paused or self._activity == "stopping":
            pipeline.pause()
        if self._activity != "stopping":
            self._set("sending")

    async def _measure(self, source: Source) -> None:
        try:
            self.total = await source.size_hint()
        except TransferdError as e:  # the ETA is a nicety: a source that cannot say has none
            log.debug("no size hint: %s", e.message)

    def _failed_run(self, e: BaseException) -> None:
        self.errors[type(e).__name__] += 1
        self.definition.last_error = e.message if isinstance(e, TransferdError) else repr(e)
        self.env.save(self.definition)

    def _succeeded(self, result: SendResult) -> None:
        d = self.definition
        d.sequence = result.manifest.body.sequence
        d.last_error = None
        if result.failures:
            d.last_error = f"{len(result.failures)} source items unreadable"
        log.info(
            "job done: manifest %d published",
            d.sequence,
            extra={"unreadable": len(result.failures), "seconds": round(result.seconds, 1)},
        )
        self._end(DONE, d.last_error)

    def _end(self, outcome: str, error: str | None) -> None:
        d = self.definition
        d.outcome, d.finished, d.last_error = outcome, utc_now(), error
        self.env.save(d)
        self._set(outcome)
