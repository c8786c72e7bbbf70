"""The Prometheus endpoint: ``GET /metrics`` on loopback, read from the jobs at scrape time.

Nothing is counted twice: a collector reads the counters the pipeline and the store wrappers
already keep (send/pipeline.py ``Counters``, stores/throttle.py ``FlowStats``) when Prometheus
scrapes, summed over the job's runs in this process, so every ``_total`` only grows until the
daemon restarts (which Prometheus' ``rate()`` handles as a counter reset).

Series, all labelled with ``job``:

- ``transferd_bytes_total{stage}``: read (plaintext read from the source), compressed (sealed
  chunks: compressed plus 40 bytes of envelope each), sent (pack bytes the store acknowledged),
  reused (unchanged entries, not read again), deduplicated (read, but the host holds its chunks
  or this run packed them already: not sent);
- ``transferd_objects_total{stage}``: entries (files, tables) done, chunks sealed, chunks reused,
  packs sent, unreadable source items;
- ``transferd_store_retries_total``: transient store failures (each retried with backoff);
- ``transferd_errors_total{kind}``: runs that failed, by error class;
- ``transferd_job_phase{phase}``: 1 for the phase the job is in, 0 for the others;
- ``transferd_queue_depth{queue}``: blocks waiting for the packer, uploads in flight, uploads
  waiting for a pause or the bandwidth limit;
- ``transferd_stage_seconds_total{stage}``: time in each phase, time uploading (summed over
  parallel uploads), time held by the bandwidth limit;
- ``transferd_bandwidth_limit_bytes_per_second``: the job's limit (0: none; ``job=""``: global).

With the receiving role, the storage host's own counters (host/housekeeping.py,
host/admission.py, host/connections.py), unlabelled:

- ``transferd_host_partial_bytes_reclaimed_total``, ``transferd_host_partials_removed_total``:
  partial uploads swept while the host runs;
- ``transferd_host_refused_total{code}``: requests refused that a flood repeats (no grant,
  rate, replay memory, timeouts), by error code;
- ``transferd_host_connections``, ``transferd_host_uploads``: open now.

The endpoint listens on loopback only (daemon/config.py refuses anything else): job names and sizes
are for the host's own agent, which forwards them where they belong.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from transferd import __version__
from transferd.daemon.job import PHASES
from transferd.daemon.manager import Manager
from transferd.errors import ConfigError

log = logging.getLogger("transferd.daemon.metrics")


class JobCollector(Collector):
    def __init__(self, manager: Manager) -> None:
        self.manager = manager

    def collect(self) -> Iterable[Metric]:
        by = ["job", "stage"]
        info = GaugeMetricFamily("transferd_info", "The running transferd.", labels=["version"])
        info.add_metric([__version__], 1)
        nbytes = CounterMetricFamily("transferd_bytes", "Bytes through each stage.", labels=by)
        objects = CounterMetricFamily("transferd_objects", "Objects through each stage.", labels=by)
        retries = CounterMetricFamily(
            "transferd_store_retries", "Transient store failures.", labels=["job"]
        )
        errors = CounterMetricFamily(
            "transferd_errors", "Failed runs by error class.", labels=["job", "kind"]
        )
        phase = GaugeMetricFamily(
            "transferd_job_phase", "1 for the job's phase.", labels=["job", "phase"]
        )
        queues = GaugeMetricFamily(
            "transferd_queue_depth", "Items waiting or in flight.", labels=["job", "queue"]
        )
        seconds = CounterMetricFamily(
            "transferd_stage_seconds", "Seconds spent in each stage.", labels=by
        )
        limit = GaugeMetricFamily(
            "transferd_bandwidth_limit_bytes_per_second",
            'Upload limit (0: none; job="": the global limit).',
            labels=["job"],
        )
        limit.add_metric([""], self.manager.env.bucket.rate)
        follow = GaugeMetricFamily(
            "transferd_follow", "A follow job: lag_seconds (oldest change not yet published), "
            "slot_unconfirmed_bytes, slot_retained_wal_bytes (WAL the source keeps for the "
            "slot: a stalled follow fills the source's disk), segments, transactions, changes.",
            labels=["job", "measure"],
        )  # fmt: skip
        for job in list(self.manager.jobs.values()):
            n, t = job.name, job.totals()
            for stage, value in (
                ("read", t.bytes_read),
                ("compressed", t.bytes_sealed),
                ("sent", t.bytes_sent),
                ("reused", t.bytes_reused),
                ("deduplicated", t.bytes_deduplicated),
            ):
                nbytes.add_metric([n, stage], value)
            for stage, value in (
                ("entries", t.entries),
                ("chunks_sealed", t.chunks_new),
                ("chunks_reused", t.chunks_known),
                ("packs_sent", t.packs_sent),
                ("unreadable", t.failures),
            ):
                objects.add_metric([n, stage], value)
            retries.add_metric([n], t.transient_errors)
            for kind, count in job.errors.items():
                errors.add_metric([n, kind], count)
            current = job.phase
            for p in PHASES:
                phase.add_metric([n, p], 1 if p == current else 0)
            stats = job.store.stats if job.store else None
            queues.add_metric([n, "blocks"], job.pipeline.queue_depth() if job.pipeline else 0)
            queues.add_metric([n, "uploads_in_flight"], stats.in_flight if stats else 0)
            queues.add_metric([n, "uploads_waiting"], stats.waiting if stats else 0)
            for p, secs in list(job.phase_seconds.items()):
                seconds.add_metric([n, p], secs)
            seconds.add_metric([n, "upload"], t.upload_seconds)
            seconds.add_metric([n, "throttled"], job.bucket.waited)
            limit.add_metric([n], job.bucket.rate)
            status = job.follow_status() or {}
            for measure in ("lag_seconds", "slot_unconfirmed_bytes", "slot_retained_wal_bytes",
                            "segments", "transactions", "changes"):  # fmt: skip
                measured = status.get(measure)
                if isinstance(measured, int | float):
                    follow.add_metric([n, measure], measured)
        yield from (info, nbytes, objects, retries, errors, phase, queues, seconds, limit, follow)


class HostCollector(Collector):
    """The receiving role's counters, read from its application at scrape time."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterable[Metric]:
        from transferd.host.context import CONNECTIONS, COUNTERS, REFUSALS, UPLOADS

        counters = self.app[COUNTERS]
        reclaimed = CounterMetricFamily(
            "transferd_host_partial_bytes_reclaimed", "Bytes of partial uploads swept."
        )
        reclaimed.add_metric([], counters.partial_bytes_reclaimed)
        removed = CounterMetricFamily("transferd_host_partials_removed", "Partial uploads swept.")
        removed.add_metric([], counters.partials_removed)
        refused = CounterMetricFamily(
            "transferd_host_refused", "Requests refused, by code.", labels=["code"]
        )
        guard = self.app[CONNECTIONS]
        by_code = {**self.app[REFUSALS].refused, "too_many_connections": guard.refused,
                   "header_timeout": guard.timed_out["header"]}  # fmt: skip
        for code, n in sorted(by_code.items()):
            refused.add_metric([code], n)
        connections = GaugeMetricFamily("transferd_host_connections", "Connections open.")
        connections.add_metric([], guard.total)
        uploads = GaugeMetricFamily("transferd_host_uploads", "Uploads being received.")
        uploads.add_metric([], self.app[UPLOADS].busy)
        yield from (reclaimed, removed, refused, connections, uploads)


class MetricsServer:
    def __init__(self, listen: tuple[str, int], manager: Manager | None) -> None:
        self.listen = listen
        self.registry = CollectorRegistry()
        if manager is not None:
            self.registry.register(JobCollector(manager))
        self._runner: web.AppRunner | None = None
        self.url = ""

    def add_host(self, app: web.Application) -> None:
        """Export the receiving role's counters too."""
        self.registry.register(HostCollector(app))

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        host, port = self.listen
        try:
            await web.TCPSite(self._runner, host, port).start()
        except OSError as e:
            await self._runner.cleanup()
            raise ConfigError(
                f"cannot listen for metrics on {host}:{port}: {(e.strerror or str(e)).lower()}",
                hint='choose another listen address in [metrics], or listen = "" for none',
            ) from None
        bound = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound}/metrics"
        log.info("metrics endpoint ready", extra={"url": self.url})

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
