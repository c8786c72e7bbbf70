"""``send postgresql://… --follow``: the snapshot copied, then the changes, to a cut-over.

The order of one follow job (protocol/POSTGRESQL.md §7, SPEC.md §11.5):

1. *Pre-flight* (sources/postgres/preflight.py): every missing prerequisite named with its fix.
2. *Slot*: a publication of the selected tables, then the slot, created with an exported
   snapshot; a holder session adopts the snapshot and exports it again, so the replication
   connection streams while the snapshot is read.
3. *Copy*: the send pipeline reads the snapshot exactly as a plain send does; beside it the
   consumer (send/followloop.py) seals the changes into segments. No manifest can name them yet,
   so each is recorded locally (send/followstate.py) once the host holds its packs, and then
   confirmed to the slot: the slot does not hold days of WAL while the copy runs. A sender that
   dies now loses the snapshot; the next run drops the slot and starts again from a new one.
4. *Snapshot published*: manifest 1 is the snapshot, exactly a plain send's; manifest 2 adds the
   segments of the copy phase.
5. *Follow*: each segment sealed is uploaded, then a manifest naming it (send/followpublish.py),
   and only then confirmed to the slot. A run killed at any point resumes from the end of the
   newest manifest's last segment: the slot sends again what it was not told is stored, and the
   tracker drops what the host does hold (PostgreSQL 15 may send that again too).
6. *Cut-over* (``request_cutover``): a marker is written into the WAL; every transaction that
   committed before it arrives first; the last segment holds them and the sequences read then;
   its manifest is published, the slot confirmed and dropped (kept with ``keep_slot``), and the
   copy is complete up to the marker's LSN.

A lost replication connection (the source restarted, the network cut) is reconnected from the
last published position; the partial segment is dropped, its packs deleted. A store that fails
after every retry ends the run, which the next one resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg

from transferd.core import catalog
from transferd.core.changes import ChangeRef, header_record, records_bytes, seal_segment
from transferd.core.constants import NONCE_SIZE
from transferd.core.jobkey import JobKey, post_quantum_check_keys, wrap
from transferd.core.keys import RecipientKey, SenderSecretKey
from transferd.core.manifest import SignedManifest
from transferd.core.objectlist import ObjectRef
from transferd.core.packs import PackEntry
from transferd.core.pgoutput import lsn_text, parse_lsn
from transferd.errors import ConfigError, SourceError, TransferdError
from transferd.send import followresume
from transferd.send.changewriter import ChangeWriter, PlacedChunk, WrittenStream
from transferd.send.config import Counters, PipelineConfig
from transferd.send.followloop import Consumer, FollowStatus, FollowTuning, Sealed
from transferd.send.followpublish import publish_follow
from transferd.send.followsetup import Setup, open_slot, sequences_now
from transferd.send.followstate import FollowState
from transferd.send.journal import Journal
from transferd.send.pipeline import Pipeline
from transferd.send.publish import newest_manifest, publish
from transferd.send.resume import reconcile
from transferd.send.run import utc_now
from transferd.send.state import JobState, open_job_state
from transferd.sources.postgres import conninfo
from transferd.sources.postgres.changes import ChangeTracker
from transferd.sources.postgres.listing import Column, Table
from transferd.sources.postgres.slot import ReplicationStream, drop_slot, emit_marker, slot_state
from transferd.sources.postgres.snapshot import quote_ident
from transferd.sources.postgres.source import PgOptions, PostgresSource
from transferd.stores.base import Store

log = logging.getLogger(__name__)

RECONNECTS = 8
"""Replication connections lost in a row before the run gives up (the next run resumes)."""
CUTOVER_FILE = "cutover"
"""In the job's state directory: written by ``send --cutover``, read by the running follow."""


@dataclass(frozen=True)
class FollowOptions:
    publication: str | None = None
    keep_slot: bool = False
    cutover_at_end: bool = False
    """Cut over as soon as the copy has caught up with the source (its writes stopped)."""
    max_retained_wal: int = 16 * 1024**3
    """Warn when the source keeps more WAL than this for the slot (0: never)."""
    require_pq: bool = False
    """Refuse classic-only (X25519) recipients, as ``send --require-pq`` does (send/compose.py)."""
    tuning: FollowTuning = field(default_factory=FollowTuning)


@dataclass
class FollowResult:
    job: str
    manifest: SignedManifest
    cutover_lsn: int
    status: FollowStatus
    counters: Counters
    seconds: float


class Follow:
    def __init__(
        self,
        *,
        spec: str,
        pg: PgOptions,
        store: Store,
        job: str,
        sender: SenderSecretKey,
        recipients: list[RecipientKey],
        state_dir: Path,
        config: PipelineConfig,
        options: FollowOptions,
        counters: Counters | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        on_pipeline: Callable[[Pipeline], None] | None = None,
    ) -> None:
        if pg.snapshot is not None:
            raise ConfigError("--follow takes its snapshot from the replication slot; drop "
                              "--snapshot")  # fmt: skip
        self.spec, self.pg, self.store, self.job = spec, pg, store, job
        self.sender, self.recipients, self.state_dir = sender, recipients, state_dir
        self.config, self.options, self.rng = config, options, rng
        self.counters = counters or Counters()
        self.on_pipeline = on_pipeline
        self.info = conninfo.parse(spec, pg.password_file)
        self.status = FollowStatus()
        self.cutover_requested = asyncio.Event()
        self._warned_wal = False

    def request_cutover(self) -> None:
        self.cutover_requested.set()

    # --- the run ---------------------------------------------------------------------------

    async def run(self) -> FollowResult:
        started = time.monotonic()
        # before the state, the slot or a snapshot exists: a refused job leaves nothing behind
        warning = post_quantum_check_keys(self.job, self.recipients,
                                          required=self.options.require_pq)  # fmt: skip
        if warning is not None:
            log.warning("%s", warning)
        state = open_job_state(self.state_dir, self.job, self.rng)
        follow = FollowState(state.directory / "follow.sqlite")
        self._cutover_path = state.directory / CUTOVER_FILE
        try:
            self._check_same_job(state)
            run = _Run(self, state, follow)
            manifest, lsn = await run.go()
            _remove(self._cutover_path)
            return FollowResult(self.job, manifest, lsn, self.status, self.counters,
                                time.monotonic() - started)  # fmt: skip
        finally:
            follow.close()
            state.close()

    def _check_same_job(self, state: JobState) -> None:
        journal = state.journal
        for key, given in (("source", self.info.description),
                           ("sender", self.sender.public().to_text())):  # fmt: skip
            recorded = journal.get_meta(key)
            if recorded is not None and recorded != given:
                raise ConfigError(f"job {self.job} was started with {key} {recorded}, not {given}",
                                  hint="use another job name for another source or sender",
                                  job=self.job)  # fmt: skip
            journal.set_meta(key, given)

    def cutover_asked(self) -> bool:
        if not self.cutover_requested.is_set() and self._cutover_path.exists():
            self.cutover_requested.set()
        return self.cutover_requested.is_set()


class _Run:
    """One run's state: the phase it found, its connections, the manifest it builds on."""

    def __init__(self, f: Follow, state: JobState, follow: FollowState) -> None:
        self.f = f
        self.state = state
        self.key: JobKey = state.key
        self.fs = follow
        self.status = f.status
        self.newest: SignedManifest | None = None
        self.sql: asyncpg.Connection | None = None
        self.stream: ReplicationStream | None = None
        self.copy_journal: Journal | None = None
        self.copying = False

    async def go(self) -> tuple[SignedManifest, int]:
        f = self.f
        self.newest = await newest_manifest(f.store, f.job, f.sender.public(), self.state.job_id)
        phase = self.fs.get("phase")
        if self.newest is not None and phase is None:
            raise ConfigError(f"job {f.job} is a copy made without --follow",
                              hint="follow the database as a new job (another --job)")  # fmt: skip
        self.sql = await f.info.connect(SourceError, application_name="transferd-follow-admin")
        try:
            if phase == "done":
                lsn = parse_lsn(self.fs.get("cutover_lsn"))
                assert self.newest is not None  # noqa: S101 - done: published
                return self.newest, lsn
            if self.newest is None:
                await self._copy_phase()
            else:
                if phase == "copy":  # killed just after publishing the snapshot's manifest
                    self.fs.set(phase="snapshot", snapshot_sequence=self.newest.body.sequence)
                await self._resume()
            return await self._follow()
        finally:
            if self.stream is not None:
                await self.stream.close()
            if self.copy_journal is not None:
                self.copy_journal.close()
            await self.sql.close()

    # --- 1 to 4: snapshot and the copy phase -------------------------------------------------

    async def _copy_phase(self) -> None:
        f, sql = self.f, self.sql
        assert sql is not None  # noqa: S101
        self.status.phase = "copy"
        setup: Setup = await open_slot(f.info, sql, f.job, f.pg, f.options.publication, self.fs)
        self.stream = setup.stream
        self.status.consistent_lsn = self.status.published_lsn = setup.consistent_lsn
        self.copying = True
        self.copy_journal = Journal(self.state.directory / "journal.sqlite")
        tables = setup.tables
        tracker = ChangeTracker(tables, setup.consistent_lsn)
        self.tracker = tracker
        source = PostgresSource(f.spec, replace(
            f.pg, snapshot=setup.snapshot, rewritten=self._truncated,
            identity_extra={"snapshot_origin": "slot", "slot": setup.slot,
                            "publication": setup.publication,
                            "consistent_lsn": lsn_text(setup.consistent_lsn)},
        ))  # fmt: skip
        self.setup = setup
        copy_done = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tg:
                consumer = tg.create_task(self._consume(setup.consistent_lsn, copy_done))
                await self._copy(source, copy_done)
                await consumer
        except BaseExceptionGroup as group:
            raise _first(group) from None
        finally:
            await source.close()
            await setup.holder.close()

    async def _copy(self, source: PostgresSource, copy_done: asyncio.Event) -> None:
        f, journal = self.f, self.state.journal
        run = int(journal.get_meta("run") or 0) + 1
        journal.set_meta("run", str(run))
        await reconcile(f.store, f.job, self.key, journal)
        pipeline = Pipeline(f.job, self.key, f.store, journal, run, f.config, f.counters, f.rng)
        if f.on_pipeline is not None:
            f.on_pipeline(pipeline)
        await pipeline.run(source)
        self._run_number = run
        self._source = source
        copy_done.set()

    async def _truncated(self, table: Any) -> bool:
        """The copy met ``table`` rewritten: wait until the changes are read up to now, then
        say whether a TRUNCATE of it was among them."""
        assert self.sql is not None  # noqa: S101
        now = parse_lsn(str(await self.sql.fetchval("SELECT pg_current_wal_lsn()::text")))
        deadline = time.monotonic() + 60
        # polled: the consumer moves received_lsn on every message, an event per message
        # would cost more than this rare wait
        while self.status.received_lsn < now and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        return bool(table.oid in self.tracker.truncated)

    async def _consume(self, start: int, copy_done: asyncio.Event) -> None:
        """The copy phase's consumer: until the copy is done (checked between transactions, at
        each tick), then manifests 1 and 2, and the same consumer goes on following."""
        consumer = self._consumer(start)

        async def tick() -> bool:
            await self._tick()
            return copy_done.is_set() and not consumer._in_transaction

        consumer.tick = tick
        await consumer.run()
        consumer.tick = self._tick
        await consumer.seal()
        await self._publish_snapshot()
        self.consumer = consumer

    # --- resume ------------------------------------------------------------------------------

    async def _resume(self) -> None:
        f, sql = self.f, self.sql
        assert sql is not None  # noqa: S101
        assert self.newest is not None  # noqa: S101
        if self.fs.get("phase") == "snapshot":
            await self._publish_pending()
        self.newest = await newest_manifest(f.store, f.job, f.sender.public(), self.state.job_id)
        assert self.newest is not None  # noqa: S101
        end = await followresume.reconcile(f.store, self.newest, self.state.journal, self.fs)
        self.status.consistent_lsn = parse_lsn(self.fs.get("consistent_lsn"))
        self.status.published_lsn = end.end_lsn
        self.status.manifest = self.newest.body.sequence
        if end.cutover:
            raise ConfigError(f"job {f.job} was cut over at {lsn_text(end.end_lsn)} already")
        self.consumer = self._consumer(end.end_lsn)

    # --- 5 and 6: following --------------------------------------------------------------------

    def _consumer(self, start: int) -> Consumer:
        tables = self._tables()
        if not hasattr(self, "tracker"):
            self.tracker = ChangeTracker(tables, start)
        writer = ChangeWriter(self.f.job, self.key, self.f.store, self._on_pack,
                              level=self.f.config.level)  # fmt: skip
        self.writer = writer
        return Consumer(self.stream_or_new(), self.tracker, writer, self, self.f.options.tuning,
                        self.status, start_lsn=start, tick=self._tick)  # fmt: skip

    def stream_or_new(self) -> ReplicationStream:
        if self.stream is None:
            self.stream = ReplicationStream(self.f.info, self.fs.get("slot") or "",
                                            self.fs.get("publication") or "")  # fmt: skip
        return self.stream

    def _tables(self) -> list[Table]:
        return [
            Table(
                t["oid"],
                t["schema"],
                t["name"],
                0,
                0,
                0,
                tuple(Column(c, "") for c in t["columns"]),
            )
            for t in self.fs.tables()
        ]

    async def _follow(self) -> tuple[SignedManifest, int]:
        self.status.phase = "follow"
        connect = self.stream is None or self.stream.cur is None
        lost = 0
        while True:
            try:
                if connect:
                    await self._reconnect()
                    connect = False
                lsn = await self.consumer.run()
                if lsn is not None:
                    break
            except SourceError as e:
                lost += 1
                if lost > RECONNECTS:
                    raise
                log.warning("%s; reconnecting from %s", e.message,
                            lsn_text(self.status.published_lsn))  # fmt: skip
                await self._drop_partial()
                await asyncio.sleep(min(30.0, 0.5 * 2**lost))
                connect = True
        assert self.newest is not None  # noqa: S101
        await self._finish(lsn)
        self.status.phase = "done"
        self.status.cutover_lsn = lsn
        log.info("copy complete up to LSN %s", lsn_text(lsn))
        return self.newest, lsn

    async def _reconnect(self) -> None:
        """A new replication connection (and a new session, if it was lost too), streaming
        from the end of the last published segment."""
        if self.stream is not None:
            await self.stream.close()
        self.stream = None
        if self.sql is None or self.sql.is_closed():
            name = "transferd-follow-admin"
            self.sql = await self.f.info.connect(SourceError, application_name=name)
        stream = self.stream_or_new()
        await stream.connect()
        start = self.status.published_lsn
        stream.start(start, start)
        self.tracker = ChangeTracker(self._tables(), self.status.published_lsn)
        marker = self.consumer_marker()
        self.consumer = self._consumer(self.status.published_lsn)
        self.consumer.marker = marker

    async def _drop_partial(self) -> None:
        """The segment being built when the stream failed: its packs deleted, never listed."""
        await self.writer.close()
        names = [] if self.copying else self.fs.unlisted_packs()
        for name in names:
            try:
                await self.f.store.delete_object(self.f.job, name)
            except TransferdError as e:
                log.warning("could not delete pack %s of a dropped segment: %s", name, e.message)
        if self.copy_journal is not None and names:
            self.copy_journal.forget_packs(names)
        self.fs.forget_packs(names)

    async def _tick(self) -> bool:
        """Once a second: the cut-over asked for, the slot's state now and then."""
        try:
            await self._tick_once()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as e:
            raise SourceError(f"lost the session with {self.f.info.server}: {e}") from None
        return False

    async def _tick_once(self) -> None:
        f, sql = self.f, self.sql
        assert sql is not None  # noqa: S101
        if self.consumer_marker() is None and self.status.phase == "follow":
            caught_up = f.options.cutover_at_end and await self._caught_up()
            if f.cutover_asked() or caught_up:
                self.status.phase = "cutover"
                self.consumer.marker = await emit_marker(sql, f.job)
                log.info("cut-over marker written at %s", lsn_text(self.consumer.marker))
        now = time.monotonic()
        if now - getattr(self, "_polled", 0.0) >= 5.0:
            self._polled = now
            slot = await slot_state(sql, self.fs.get("slot") or "")
            if slot is not None:
                self.status.source_lsn = slot.current_lsn
                self.status.unconfirmed_bytes = slot.unconfirmed_bytes
                self.status.retained_bytes = slot.retained_bytes
                self._watch_wal()

    def consumer_marker(self) -> int | None:
        consumer = getattr(self, "consumer", None)
        return None if consumer is None else consumer.marker

    async def _caught_up(self) -> bool:
        assert self.sql is not None  # noqa: S101
        now = parse_lsn(str(await self.sql.fetchval("SELECT pg_current_wal_lsn()::text")))
        self.status.source_lsn = now
        return self.status.received_lsn >= now or self.status.published_lsn >= now

    def _watch_wal(self) -> None:
        limit = self.f.options.max_retained_wal
        if limit and self.status.retained_bytes > limit and not self._warned():
            log.warning(
                "the source keeps %d MiB of WAL for slot %s, more than the limit of %d MiB: a "
                "stalled follow fills the source's disk",
                self.status.retained_bytes >> 20, self.fs.get("slot"), limit >> 20,
            )  # fmt: skip

    def _warned(self) -> bool:
        warned, self.f._warned_wal = self.f._warned_wal, True
        return warned

    # --- the sink: what a sealed segment becomes ----------------------------------------------

    async def _on_pack(self, name: str, size: int, entries: list[PackEntry]) -> None:
        self.fs.add_pack(name, size)
        if self.copying and self.copy_journal is not None:
            chunks = [(e.chunk_id, e.offset, e.blob_len, e.plain_len) for e in entries]
            await asyncio.to_thread(self.copy_journal.record_pack, name, size, chunks)
        self.f.counters.bytes_sent += size
        self.f.counters.packs_sent += 1

    async def sequences(self) -> tuple[bytes, int]:
        assert self.sql is not None  # noqa: S101
        return await sequences_now(self.sql, self.f.pg)

    async def sealed(self, segment: Sealed) -> None:
        stream = self.stream_or_new()
        if self.copying:
            self.fs.add_pending(_pending_json(segment))
            stream.ack(segment.end_lsn)
            self.status.published_lsn = segment.end_lsn
            return
        assert self.newest is not None  # noqa: S101
        base = self.newest.body.totals.objects
        unlisted = self.fs.unlisted_packs()
        indexes = {name: base + i for i, name in enumerate(unlisted)}
        ref = await self._store_segment(segment, indexes)
        sizes = self.fs.pack_sizes(unlisted)
        packs = [ObjectRef(bytes.fromhex(n), sizes[n]) for n in unlisted]
        self.newest = await publish_follow(
            self.f.store, self.newest, packs=packs, segments=[ref], sender=self.f.sender,
            created=utc_now(),
        )  # fmt: skip
        self.fs.list_packs(indexes)
        if segment.cutover is not None:
            self.fs.set(phase="done", cutover_lsn=lsn_text(segment.end_lsn))
        stream.ack(segment.end_lsn)
        self.status.published_lsn = segment.end_lsn
        self.status.manifest = self.newest.body.sequence

    async def _store_segment(self, s: Sealed, indexes: dict[str, int]) -> ChangeRef:
        def refs(stream: WrittenStream) -> list[catalog.ChunkRef]:
            return [_ref(c, indexes) for c in stream.chunks]

        records: list[dict[str, Any]] = [header_record(s.start_lsn, s.end_lsn, s.transactions,
                                                       s.counts)]  # fmt: skip
        for name, stream in (("changes", s.changes), ("cutover", s.cutover)):
            if stream is None:
                continue
            if name == "cutover":
                records.append({"t": "cutover", "sequences": s.sequences})
            records += catalog.chunk_records(refs(stream))
            records.append({"t": "end", "size": stream.size, "blake3": stream.blake3})
        try:
            data = records_bytes(records)
        except ValueError as e:
            raise SourceError(f"the changes up to {lsn_text(s.end_lsn)} do not fit one change "
                              f"segment: {e}", hint="a single transaction of more than about "
                              "40 GiB is beyond this version") from None  # fmt: skip
        sealed = seal_segment(self.key.catalog_key, s.start_lsn, s.end_lsn, data,
                              self.f.rng(NONCE_SIZE))  # fmt: skip
        digest = hashlib.sha256(sealed).digest()
        await self.f.store.put_object(self.f.job, digest.hex(), sealed)
        return ChangeRef(digest, len(sealed), s.start_lsn, s.end_lsn, s.cutover is not None)

    async def _publish_snapshot(self) -> None:
        """Manifest 1 (the snapshot, as a plain send publishes it), then 2 (the copy phase's
        changes). Called between transactions, with every change pack acknowledged."""
        f, journal = self.f, self.state.journal
        if not f.recipients:
            raise ConfigError(f"job {f.job} is new: give at least one --recipient")
        unique = {r.to_text(): r for r in f.recipients}
        stanzas = [wrap(self.key, unique[t], f.rng(32)) for t in sorted(unique)]
        identity = {**self._source.identity(), "run": self._run_number, "finished": utc_now()}
        self.newest = await publish(
            store=f.store, job=f.job, job_id=self.state.job_id, key=self.key, journal=journal,
            run=self._run_number, source_identity=identity, sender=f.sender, stanzas=stanzas,
            created=utc_now(), rng=f.rng,
        )  # fmt: skip
        self.fs.set(phase="snapshot", snapshot_sequence=self.newest.body.sequence)
        self.copying = False
        await self._publish_pending()

    async def _publish_pending(self) -> None:
        f = self.f
        self.newest = await newest_manifest(f.store, f.job, f.sender.public(), self.state.job_id)
        assert self.newest is not None  # noqa: S101
        pending = list(self.fs.pending())
        if pending and self.newest.body.sequence == int(self.fs.get("snapshot_sequence") or 0):
            indexes = await asyncio.to_thread(_pack_indexes, self.state.journal,
                                              set(self.fs.unlisted_packs()))  # fmt: skip
            refs = [await self._store_segment(_from_pending(p), indexes) for p in pending]
            self.newest = await publish_follow(f.store, self.newest, packs=[], segments=refs,
                                               sender=f.sender, created=utc_now())  # fmt: skip
            self.fs.list_packs(indexes)
        self.fs.clear_pending()
        self.fs.set(phase="follow")
        self.status.manifest = self.newest.body.sequence

    async def _finish(self, lsn: int) -> None:
        """After the cut-over segment is published: the slot and publication let go."""
        f, sql = self.f, self.sql
        assert sql is not None  # noqa: S101
        if self.stream is not None:
            await self.stream.close()
            self.stream = None
        if f.options.keep_slot:
            log.info("slot %s kept (--keep-slot), confirmed up to %s", self.fs.get("slot"),
                     lsn_text(lsn))  # fmt: skip
            return
        await drop_slot(sql, self.fs.get("slot") or "")
        if self.fs.get("created_publication") == "1":
            name = quote_ident(self.fs.get("publication") or "")
            await sql.execute(f"DROP PUBLICATION IF EXISTS {name}")


def _ref(c: PlacedChunk, indexes: dict[str, int]) -> catalog.ChunkRef:
    return catalog.ChunkRef(indexes[c.pack], c.offset, c.blob_len, c.plain_len, c.chunk_id)


def _pack_indexes(journal: Journal, names: set[str]) -> dict[str, int]:
    """Index in the object lists of each of ``names``: the journal's order (the lists')."""
    out: dict[str, int] = {}
    for i, (name, _) in enumerate(journal.packs_in_order()):
        if name in names:
            out[name] = i
    missing = names - set(out)
    if missing:
        raise SourceError(f"{len(missing)} change packs are not in the journal")
    return out


def _pending_json(s: Sealed) -> dict[str, Any]:
    def stream(w: WrittenStream | None) -> Any:
        if w is None:
            return None
        chunks = [[c.pack, c.offset, c.blob_len, c.plain_len, c.chunk_id.hex()] for c in w.chunks]
        return {"chunks": chunks, "size": w.size, "blake3": w.blake3}

    return {"start": s.start_lsn, "end": s.end_lsn, "transactions": s.transactions,
            "counts": [[k[0], k[1], *v] for k, v in s.counts.items()],
            "changes": stream(s.changes)}  # fmt: skip


def _from_pending(p: dict[str, Any]) -> Sealed:
    w = p["changes"]
    chunks = tuple(PlacedChunk(c[0], c[1], c[2], c[3], bytes.fromhex(c[4])) for c in w["chunks"])
    return Sealed(p["start"], p["end"], p["transactions"],
                  {(c[0], c[1]): c[2:] for c in p["counts"]},
                  WrittenStream(chunks, w["size"], w["blake3"]))  # fmt: skip


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]
