"""The daemon's jobs: definitions in the state directory, each job's task, the operators' verbs.

At start every job whose definition says *run* is launched again: ``send`` resumes it from its
journal, so a job interrupted by a crash, a SIGKILL or a reboot continues where the host's
acknowledgements left it. A paused job stays paused until resumed; a finished or cancelled job
stays as it ended.

The verbs (start, pause, resume, cancel, limit, status, logs) are what the control socket offers
(daemon/control.py); each answers with plain JSON-able data or raises a TransferdError whose exit
code the CLI returns. ``stop()`` drains every job at once, within the configured deadline.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from typing import TYPE_CHECKING, Any

from transferd.core.jobkey import PQ_HINT
from transferd.core.keys import SenderSecretKey, parse_recipient
from transferd.core.manifest import check_job_name
from transferd.daemon.config import Config
from transferd.daemon.definitions import CANCEL, RUN, Definitions, JobDefinition
from transferd.daemon.job import JobEnv, ManagedJob, utc_now
from transferd.daemon.logs import JobLogFiles
from transferd.errors import ConfigError, FormatError, JobNotFoundError, ObjectNotFoundError
from transferd.send.compose import SendOptions, open_send_store
from transferd.send.config import default_workers
from transferd.sources.open import is_postgres, open_source
from transferd.stores.ratelimit import TokenBucket
from transferd.util.extras import needs
from transferd.util.units import format_rate

if TYPE_CHECKING:
    from transferd.sources.azure.auth import AzureOptions
    from transferd.sources.postgres.source import PgOptions

log = logging.getLogger("transferd.daemon")

_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@]*:[^/@]*@|[?&]password=", re.I)


def _pg_options(source: str, postgres: dict[str, Any] | None) -> PgOptions | None:
    """The options of a PostgreSQL source; ConfigError if given for another source."""
    if postgres is None:
        return None
    if not is_postgres(source):
        raise ConfigError("PostgreSQL options apply to PostgreSQL sources (postgresql://…) only")
    with needs("postgres"):  # asyncpg: only for a database
        from transferd.sources.postgres.source import PgOptions

    return PgOptions.from_settings(postgres)


def _refuse_password(source: str) -> None:
    """A job definition is stored and shown: a password in its source is refused. PostgreSQL
    reads one from a passfile: ``LoadCredential=pgpass:…`` and ``PGPASSFILE=%d/pgpass`` in the
    unit give it to the daemon as a credential."""
    if _URL_PASSWORD.search(source):
        raise ConfigError(
            "the source URL holds a password; the daemon stores job definitions and logs "
            "sources, so it takes no password there",
            hint="give it in a passfile: LoadCredential=pgpass:/etc/transferd/pgpass and "
            "Environment=PGPASSFILE=%d/pgpass in the unit",
        )


class Manager:
    def __init__(
        self, config: Config, sender: SenderSecretKey, logs: JobLogFiles | None = None
    ) -> None:
        s, d = config.send, config.daemon
        self.settings = s
        self.drain_timeout = d.drain_timeout
        self.state_dir = d.state_dir
        self.definitions = Definitions(d.state_dir)
        self.logs = logs
        options = SendOptions(
            level=s.level,
            uploads=s.uploads,
            pack_size=s.pack_size,
            retries=s.retries,
            ca_file=s.ca_file,
            workers=s.workers or default_workers(),  # 0: one per core
            require_pq=s.require_pq,
            s3_config=config.s3_config,
            azure=_azure_options(config.azure),
        )
        self.env = JobEnv(
            sender=sender,
            state_dir=d.state_dir,
            options=options,
            retry_delay=s.retry_delay,
            default_limit=s.job_bandwidth,
            bucket=TokenBucket(s.bandwidth),
            slots=asyncio.Semaphore(d.max_jobs),
            save=self.definitions.save,
        )
        self.jobs: dict[str, ManagedJob] = {}
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for definition in self.definitions.load_all():
            job = ManagedJob(definition, self.env)
            self.jobs[job.name] = job
            if definition.desired == RUN and definition.outcome is None:
                log.info("resuming job from its checkpoint", extra={"job": job.name})
                job.launch()
        self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            for job in self.jobs.values():
                job.tick()
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        """Drain every running job at once, then release their sources."""
        if self._ticker is not None:
            self._ticker.cancel()
        running = [j for j in self.jobs.values() if j.running]
        if running:
            log.info(
                "stopping %d jobs: uploads in flight get %.0f s", len(running), self.drain_timeout
            )
        await asyncio.gather(*(j.stop(self.drain_timeout) for j in running))
        await asyncio.gather(*(j.close() for j in self.jobs.values()))

    def get(self, name: str) -> ManagedJob:
        job = self.jobs.get(name)
        if job is None:
            raise JobNotFoundError(
                f"no job {name} in this daemon",
                hint="list jobs with 'transferd jobs list'",
                job=name,
            )
        return job

    # --- verbs --------------------------------------------------------------------------------

    async def start_job(
        self,
        name: str,
        source: str | None,
        store: str | None,
        recipients: list[str],
        limit: int | None,
        postgres: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            check_job_name(name)
        except FormatError as e:
            raise ConfigError(e.message) from None
        job = self.jobs.get(name)
        if job is not None:
            return self._restart(job, source, store, recipients, limit, postgres)
        if not source:
            raise ConfigError(f"job {name} is new: give its source")
        options = _pg_options(source, postgres)
        store = store or self.settings.store
        if not store:
            raise ConfigError(
                f"job {name} names no store and [send] has no default store",
                hint="give --to URL, or set store = … in [send] of the daemon's configuration",
            )
        recipients = recipients or list(self.settings.recipients)
        parsed = [parse_recipient(r) for r in recipients]
        classic = [r.display() for r in parsed if not r.post_quantum]
        if classic and self.env.options.require_pq:  # refused now, not at the job's first run
            raise ConfigError(
                f"job {name} has classic-only (X25519) recipients, refused by require_pq in "
                f"[send]: {', '.join(classic)}",
                hint=PQ_HINT,
            )
        if not recipients and not (self.state_dir / "jobs" / name / "job.key").exists():
            raise ConfigError(
                f"job {name} is new: give at least one recipient",
                hint="--recipient tdrpq1…, or recipients = […] in [send]",
            )
        _refuse_password(source)
        # refuse a source unreadable now
        opened = open_source(source, postgres=options, azure=self.env.options.azure)
        open_send_store(store, self.env.sender, self.env.options)  # likewise an unknown store
        settings = None if options is None else options.settings()
        definition = JobDefinition(
            name, source, store, recipients, limit, created=utc_now(), postgres=settings
        )
        self.definitions.save(definition)
        job = self.jobs[name] = ManagedJob(definition, self.env)
        job.source = opened
        job.launch()
        log.info("job started", extra={"job": name, "source": opened.description, "store": store})
        return self.describe(job)

    def _restart(
        self,
        job: ManagedJob,
        source: str | None,
        store: str | None,
        recipients: list[str],
        limit: int | None,
        postgres: dict[str, Any] | None,
    ) -> dict[str, Any]:
        d = job.definition
        if job.running:
            raise ConfigError(
                f"job {d.name} is already running",
                hint="pause, resume or cancel it; start runs a job that ended again",
            )
        for what, given, held in (("source", source, d.source), ("store", store, d.store)):
            if given and given != held:
                raise ConfigError(
                    f"job {d.name} copies {held if what == 'source' else 'to ' + held}, "
                    f"not {given}",
                    hint="use another job name for another source or store",
                )
        if postgres is not None:
            options = _pg_options(d.source, postgres)
            kept = _pg_options(d.source, d.postgres or {})
            if options is not None and kept is not None and options.settings() != kept.settings():
                raise ConfigError(
                    f"job {d.name} copies {d.source} with other options",
                    hint="start it without options to run it again as it was, or use another "
                    "job name",
                )
        if recipients:
            d.recipients = recipients
        if limit is not None:
            job.set_limit(limit)
        d.desired, d.outcome, d.last_error = RUN, None, None
        self.definitions.save(d)
        job.launch()
        log.info("job started again", extra={"job": d.name})
        return self.describe(job)

    def pause(self, name: str) -> dict[str, Any]:
        job = self.get(name)
        job.pause()
        self.definitions.save(job.definition)
        log.info("job paused", extra={"job": name})
        return self.describe(job)

    def cutover(self, name: str) -> dict[str, Any]:
        """A follow job: stop at the current LSN (send/follow.py); it then ends ``done``."""
        job = self.get(name)
        if not job.request_cutover():
            raise ConfigError(f"job {name} is not following a database: nothing to cut over",
                              hint="only a job started with --follow has a cut-over")  # fmt: skip
        log.info("cut-over asked", extra={"job": name})
        return self.describe(job)

    def resume(self, name: str) -> dict[str, Any]:
        job = self.get(name)
        if job.definition.desired == CANCEL:
            raise ConfigError(f"job {name} was cancelled", hint=f"transferd jobs start {name}")
        job.resume()
        if job.definition.outcome is None:
            job.launch()
        self.definitions.save(job.definition)
        log.info("job resumed", extra={"job": name})
        return self.describe(job)

    def set_limit(self, name: str | None, rate: int | None) -> dict[str, Any]:
        if name is None:
            self.env.bucket.set_rate(rate or 0)
            log.info("global bandwidth limit set", extra={"limit": format_rate(rate or 0)})
            return {"job": None, "limit": self.env.bucket.rate}
        job = self.get(name)
        job.set_limit(rate)
        self.definitions.save(job.definition)
        log.info("bandwidth limit set", extra={"job": name, "limit": format_rate(job.bucket.rate)})
        return self.describe(job)

    async def cancel(self, name: str, purge: bool) -> dict[str, Any]:
        job = self.get(name)
        job.definition.desired = CANCEL
        self.definitions.save(job.definition)
        await job.stop(self.drain_timeout)
        await job.close()
        result = self.describe(job)
        log.info("job cancelled", extra={"job": name, "purge": purge})
        if purge:
            result["purged"] = await self._purge(job)
        return result

    async def _purge(self, job: ManagedJob) -> dict[str, Any]:
        """Delete what the host holds for the job, then its local state and definition."""
        d = job.definition
        store, _ = open_send_store(d.store, self.env.sender, self.env.options)
        try:
            names = [n async for n, _ in store.list_objects(d.name)]
            for n in names:
                await store.delete_object(d.name, n)
            manifests = len(await store.list_manifests(d.name))
        except ObjectNotFoundError:  # the host holds nothing for the job
            names, manifests = [], 0
        finally:
            await store.close()
        state = self.state_dir / "jobs" / d.name
        await asyncio.to_thread(shutil.rmtree, state, ignore_errors=True)
        self.definitions.remove(d.name)
        del self.jobs[d.name]
        log.warning(
            "job purged: %d objects deleted at the host, local state removed",
            len(names),
            extra={"job": d.name, "manifests_kept": manifests},
        )
        return {"objects_deleted": len(names), "manifests_kept": manifests}

    def logs_of(self, name: str, lines: int, offset: int | None) -> dict[str, Any]:
        if name not in self.jobs and not (self.logs and self.logs.path(name).exists()):
            self.get(name)
        if self.logs is None:
            return {"lines": [], "offset": 0}
        found, next_offset = self.logs.tail(name, lines, offset)
        return {"lines": found, "offset": next_offset}

    def list(self) -> dict[str, Any]:
        return {
            "jobs": [self.describe(j) for j in sorted(self.jobs.values(), key=lambda j: j.name)],
            "bandwidth": self.env.bucket.rate,
        }

    # --- status -------------------------------------------------------------------------------

    def describe(self, job: ManagedJob) -> dict[str, Any]:
        """A job's status as the CLI shows it (and prints with --json)."""
        d, c = job.definition, job.counters
        store = job.store
        estimate = job.estimate()
        t = job.totals()
        return {
            "name": d.name,
            "phase": job.phase,
            "source": d.source,
            "store": d.store,
            "desired": d.desired,
            "outcome": d.outcome,
            "limit": job.bucket.rate,
            "runs": job.runs,
            "bytes_read": c.bytes_read,
            "bytes_compressed": c.bytes_sealed,
            "bytes_sent": c.bytes_sent,
            "bytes_reused": c.bytes_reused,
            "bytes_deduplicated": c.bytes_deduplicated,
            "bytes_total": job.total,
            "entries": c.entries,
            "chunks": c.chunks_new,
            "packs_sent": c.packs_sent,
            "unreadable": c.failures,
            "bytes_settled": job.settled(),
            "rate": None if estimate.rate is None else round(estimate.rate, 1),
            "eta_seconds": None if estimate.eta_seconds is None else round(estimate.eta_seconds, 1),
            "uploads_in_flight": store.stats.in_flight if store else 0,
            "uploads_waiting": store.stats.waiting if store else 0,
            "queue_depth": job.pipeline.queue_depth() if job.pipeline else 0,
            "retries": t.transient_errors,
            "sequence": d.sequence,
            "last_error": d.last_error,
            "created": d.created,
            "finished": d.finished,
            "follow": job.follow_status(),
        }


def _azure_options(table: dict[str, Any]) -> AzureOptions | None:
    """The jobs' Azure sign-in, from ``[azure]`` of the configuration (checked when it was read);
    None: an Azure source's default. Imported only then: the Azure SDK is an optional extra."""
    if not table:
        return None
    from transferd.sources.azure.table import options_from_table

    return options_from_table(table)
