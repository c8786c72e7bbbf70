"""One run of a send job: lock the job, reconcile, run the pipeline, publish the manifest.

Running the same send again after any interruption resumes it: the journal and the host's
inventory say what is already stored, and only the rest is read, sealed and uploaded.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from transferd.core.jobkey import PQ_HINT, JobKey, Stanza, post_quantum_check, wrap
from transferd.core.keys import RecipientKey, SenderSecretKey, parse_recipient
from transferd.core.manifest import SignedManifest
from transferd.errors import ConfigError
from transferd.send import tuning
from transferd.send.config import Counters, PipelineConfig
from transferd.send.journal import Journal
from transferd.send.pipeline import Pipeline
from transferd.send.publish import newest_manifest, publish
from transferd.send.resume import Reconciled, reconcile
from transferd.send.state import open_job_state
from transferd.sources.base import Source
from transferd.stores.base import Store

log = logging.getLogger(__name__)


@dataclass
class SendResult:
    job: str
    manifest: SignedManifest
    counters: Counters
    reconciled: Reconciled
    failures: list[tuple[bytes, str]] = field(default_factory=list)
    seconds: float = 0.0


def utc_now(clock: Callable[[], float] = time.time) -> str:
    return datetime.datetime.fromtimestamp(int(clock()), datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


async def send(
    *,
    source: Source,
    store: Store,
    job: str,
    sender: SenderSecretKey,
    recipients: list[RecipientKey],
    state_dir: Path,
    config: PipelineConfig,
    counters: Counters | None = None,
    on_pipeline: Callable[[Pipeline], None] | None = None,
    rng: Callable[[int], bytes] = os.urandom,
    clock: Callable[[], float] = time.time,
    require_pq: bool = False,
    warn: Callable[[str, str], None] | None = None,
    epoch: int = 0,
) -> SendResult:
    """Run the job once. ``require_pq``: refuse a job with a classic-only (X25519) recipient
    (ConfigError); otherwise such a job runs, and ``warn`` hears of it (message, hint).
    ``epoch``: the lease epoch of a copy's agent, carried by the manifest it publishes
    (protocol/SPEC.md 12.2); 0 without a lease."""
    started = time.monotonic()
    tuning.tune_process()  # before this process starts the threads the pipeline will use
    state = open_job_state(state_dir, job, rng)
    try:
        journal = state.journal
        _check_same_job(journal.get_meta("source"), source.description, "source", job)
        _check_same_job(journal.get_meta("sender"), sender.public().to_text(), "sender key", job)
        journal.set_meta("source", source.description)
        journal.set_meta("sender", sender.public().to_text())

        previous = await newest_manifest(store, job, sender.public(), state.job_id)
        if previous is None:  # kept from the first run, so that a resume needs no -r again
            recipients = _first_run_recipients(journal, recipients)
        stanzas = _stanzas(previous, recipients, state.key, rng, job)
        classic = post_quantum_check(job, stanzas, required=require_pq)
        if classic is not None and warn is not None:
            warn(classic, PQ_HINT)
        elif classic is not None:
            log.warning("%s (%s)", classic, PQ_HINT)

        run = int(journal.get_meta("run") or 0) + 1
        journal.set_meta("run", str(run))
        reconciled = await reconcile(store, job, state.key, journal)

        pipeline = Pipeline(job, state.key, store, journal, run, config, counters, rng)
        if on_pipeline is not None:
            on_pipeline(pipeline)
        await pipeline.run(source)

        identity = {**source.identity(), "run": run, "finished": utc_now(clock)}
        signed = await publish(
            store=store, job=job, job_id=state.job_id, key=state.key, journal=journal, run=run,
            source_identity=identity, sender=sender, stanzas=stanzas, created=utc_now(clock),
            rng=rng, epoch=epoch,
        )  # fmt: skip
        journal.set_meta("sequence", str(signed.body.sequence))
        return SendResult(
            job,
            signed,
            pipeline.counters,
            reconciled,
            pipeline.failures,
            time.monotonic() - started,
        )
    finally:
        state.close()


def _first_run_recipients(journal: Journal, given: list[RecipientKey]) -> list[RecipientKey]:
    """The recipients of a job not yet published: those given (recorded for the next run), or
    those an interrupted first run recorded. Until a manifest wraps the job key to them they
    can still change: nothing has been encrypted to them yet."""
    if given:
        journal.set_meta("recipients", " ".join(sorted({r.to_text() for r in given})))
        return given
    recorded = journal.get_meta("recipients")
    return [parse_recipient(text) for text in recorded.split()] if recorded else []


def _check_same_job(recorded: str | None, given: str, what: str, job: str) -> None:
    if recorded is not None and recorded != given:
        raise ConfigError(
            f"job {job} was started with {what} {recorded}, not {given}",
            hint="use another job name for another source or sender",
            job=job,
            recorded=recorded,
            given=given,
        )


def _stanzas(
    previous: SignedManifest | None,
    recipients: list[RecipientKey],
    key: JobKey,
    rng: Callable[[int], bytes],
    job: str,
) -> list[Stanza]:
    """A new job wraps its key to the given recipients; a later run keeps the newest manifest's
    stanzas (rekey may have changed them) and refuses a different recipient set."""
    wanted = sorted({r.to_text() for r in recipients})
    if previous is None:
        if not recipients:
            raise ConfigError(f"job {job} is new: give at least one --recipient")
        unique = {r.to_text(): r for r in recipients}
        return [wrap(key, unique[t], rng(32)) for t in wanted]
    held = sorted(s.recipient.to_text() for s in previous.body.recipients)
    if recipients and wanted != held:
        raise ConfigError(
            f"job {job} is encrypted to {', '.join(held)}; the recipients given differ",
            hint="change recipients with transferd rekey, which re-wraps the key without resending",
        )
    return list(previous.body.recipients)
