"""Restore a stored copy of a PostgreSQL database into an empty database.

The order is pg_restore's: the schema's pre-data section (types, tables, functions, large
objects' ownership), then the data (large objects, sequences' values, every table's rows with
``COPY … FROM STDIN``), then the post-data section (indexes, constraints, triggers, refreshed
materialized views), so that indexes are built once over the loaded rows. pg_dump's SQL is
replayed by psql in one transaction each, stopping at the first error.

The reader yields the catalog in order (``ddl/post-data.sql`` first, by name); post-data waits in a
spooled temporary file (it is DDL, not rows) until the data is in. Each table is loaded on one of
``jobs`` connections while the reader goes on to the next, its pieces queued up to ``QUEUE_PIECES``
chunks: small tables load side by side. One COPY runs on one backend, one core of the target
server, so a large table loads at that speed alone; with ``split_after`` (``--split-tables-larger-
than``, as pgcopydb's option of that name), once a table's stream passes ``split_after`` bytes (and
again at each multiple), a connection free at that moment opens another COPY into the same table,
and the stream's rows, cut at row ends, go to whichever COPY has the fewest blocks waiting. Such a
table's heap then holds its rows in another physical order than the source's, which ``verify
--against`` recognises by the rows' multiset digest rather than the stream's BLAKE3 (a second read
of that table on both sides). By default every table is one COPY in stream order, so its plain COPY
hashes to the catalog's BLAKE3 again. On this project's 2-core machine splitting gains nothing
(perf/pg_restore.py, 780 MB in one table: 6.99 s with one COPY, 7.54 s with four; the restoring
process and one COPY already fill both cores): it is for targets with cores to spare, and off by
default. The reader has checked every chunk and every stream's BLAKE3; each table's rows are
counted again against the catalog.

The target must be empty unless ``force``: restoring over existing objects fails halfway or, worse,
mixes two databases. Roles named by the schema (owners, grants) must exist in the target cluster
(a copy sent with ``--no-owner --no-privileges`` names none); a missing one stops the pre-data
transaction, before any row, with that hint (sources/postgres/tools.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import IO, Any

import asyncpg

from transferd.core.catalog_walk import End, Entry
from transferd.core.jobkey import JobKey
from transferd.core.keys import RecipientIdentity, SenderPublicKey
from transferd.core.manifest import SignedManifest
from transferd.errors import ConfigError, IntegrityError, TargetError
from transferd.read.changes import ChangeReader, change_refs
from transferd.read.reader import (
    JobReader,
    Piece,
    Warn,
    load_manifest,
    log_warning,
    unwrap_key,
)
from transferd.restore.pgchanges import Applier, ChangeProgress, finish
from transferd.sources.postgres.conninfo import ConnInfo
from transferd.sources.postgres.snapshot import TEXT_SETTINGS
from transferd.sources.postgres.tools import psql
from transferd.stores.base import Store

log = logging.getLogger(__name__)

QUEUE_PIECES = 8
"""Chunks (1 MiB on average, 4 MiB at most) waiting for one table's COPY."""
SPOOL_MEMORY = 16 * 1024 * 1024
"""Post-data SQL kept in memory before it spills to a temporary file."""


@dataclass
class PgRestoreProgress:
    tables: int = 0
    rows: int = 0
    bytes: int = 0
    large_objects: int = 0
    started: float = field(default_factory=time.monotonic)
    changes: ChangeProgress = field(default_factory=ChangeProgress)
    """A follow copy's changes applied after the snapshot (restore/pgchanges.py)."""


@dataclass
class PgRestoreResult:
    job: str
    manifest: SignedManifest
    signer_checked: bool
    progress: PgRestoreProgress
    seconds: float
    source: dict[str, Any] | None


async def restore_pg(
    *,
    store: Store,
    job: str,
    identity: RecipientIdentity,
    target: ConnInfo,
    sender: SenderPublicKey | None = None,
    sequence: int | None = None,
    force: bool = False,
    jobs: int = 4,
    split_after: int | None = None,
    workers: int = 0,
    progress: PgRestoreProgress | None = None,
    warn: Warn | None = None,
    until_lsn: int | None = None,
    resume: bool = False,
) -> PgRestoreResult:
    """Restore the job's newest manifest (or ``sequence``) into the database ``target``; for a
    follow copy, then its changes (up to ``until_lsn``). ``resume``: the snapshot is in already
    (a restore killed while applying the changes): apply the rest of the changes only."""
    progress = progress or PgRestoreProgress()
    started = time.monotonic()
    signed = await load_manifest(
        store, job, sender=sender, sequence=sequence, warn=warn or log_warning
    )
    key = unwrap_key(signed, identity)
    conn = await target.connect(TargetError, application_name="transferd-restore")
    reader = JobReader(store, signed, key, workers=workers)
    try:
        if resume:
            source = await _source_record(reader)
        else:
            if not force:
                await check_empty(conn, target)
            if signed.body.changes is not None:  # refused before the snapshot is loaded
                follow = ChangeReader(store, signed, key)
                await follow.check_follows_snapshot(await change_refs(store, signed))
            restorer = _Restorer(target, conn, reader, max(1, jobs), progress, split_after)
            await restorer.run()
            source = reader.source or {}
        if signed.body.changes is not None:
            await _apply_changes(store, signed, key, target, source, progress, until_lsn, resume)
        elif resume or until_lsn is not None:
            raise ConfigError(f"job {job} is not a follow copy: it has no changes to apply",
                              hint="restore it without --resume and --until-lsn")  # fmt: skip
    finally:
        await reader.close()
        await conn.close()
    return PgRestoreResult(
        job, signed, sender is not None, progress, time.monotonic() - started,
        reader.source if not resume else source,
    )  # fmt: skip


async def _source_record(reader: JobReader) -> dict[str, Any]:
    async with contextlib.aclosing(reader.segments()) as segments:
        async for records in segments:
            return dict(records[0])
    return {}


async def _apply_changes(
    store: Store,
    signed: SignedManifest,
    key: JobKey,
    target: ConnInfo,
    source: dict[str, Any],
    progress: PgRestoreProgress,
    until_lsn: int | None,
    resume: bool,
) -> None:
    settings = {**copy_settings(source), "standard_conforming_strings": "on"}
    conn = await target.connect(TargetError, application_name="transferd-restore-changes",
                                settings=settings)  # fmt: skip
    try:
        if resume and not await conn.fetchval("SELECT to_regclass('transferd.applied')"):
            raise ConfigError(
                f"database {target.dbname} at {target.server} holds no changes of job "
                f"{signed.body.job} being applied: there is nothing to resume",
                hint="restore into an empty database without --resume",
            )
        applier = Applier(conn, ChangeReader(store, signed, key), signed.body.job,
                          progress.changes, until_lsn)  # fmt: skip
        sequences: list[bytes] = []
        await applier.run(await change_refs(store, signed), sequences.append)
        if sequences:
            await psql(target, _once(sequences[0]), TargetError, what="the cut-over's sequences")
        if not applier.stopped and until_lsn is None:
            await finish(conn)
    finally:
        await conn.close()


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def check_empty(conn: asyncpg.Connection, target: ConnInfo) -> None:
    row = await conn.fetchrow(_CONTENTS)
    assert row is not None  # noqa: S101 - a SELECT without FROM returns one row
    found = [f"{row[k]} {k.replace('_', ' ')}" for k in row.keys() if row[k]]  # noqa: SIM118
    if found:
        raise TargetError(
            f"database {target.dbname} at {target.server} is not empty: it has " + ", ".join(found),
            hint="restore into a new database (createdb NAME), or give --force to restore "
            "into this one anyway",
        )


_USER_NS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'"
_CONTENTS = f"""
SELECT
  (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE {_USER_NS}) AS relations,
  (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE {_USER_NS}) AS functions,
  (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE {_USER_NS} AND t.typtype IN ('e', 'd', 'r', 'm')) AS types,
  (SELECT count(*) FROM pg_namespace n WHERE {_USER_NS} AND n.nspname <> 'public') AS schemas,
  (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql') AS extensions,
  (SELECT count(*) FROM pg_largeobject_metadata) AS large_objects
"""  # noqa: S608 - constant text


class _Restorer:
    def __init__(
        self,
        target: ConnInfo,
        conn: asyncpg.Connection,
        reader: JobReader,
        jobs: int,
        progress: PgRestoreProgress,
        split_after: int | None,
    ) -> None:
        self.target = target
        self.conn = conn
        self.reader = reader
        self.jobs = jobs
        self.progress = progress
        self.split_after = split_after
        self.loads: _Loads | None = None
        self.post_data: IO[bytes] | None = None
        self.pre_data = False

    async def run(self) -> None:
        stream: _Stream | None = None
        try:
            async with contextlib.aclosing(self.reader.items()) as items:
                async for item in items:
                    if isinstance(item, Entry):
                        if self.loads is None:
                            self.loads = _Loads(
                                self.target, self._settings(), self.jobs, self.split_after
                            )
                        stream = await self._begin(item) if item.is_stream else None
                    elif isinstance(item, Piece):
                        assert stream is not None  # noqa: S101 - pieces come inside streams
                        await stream.feed(item.data)
                        self.progress.bytes += len(item.data)
                    else:
                        assert stream is not None  # noqa: S101
                        await stream.end(item)
                        stream = None
            if self.loads is not None:
                await self.loads.finish()
            if self.post_data is not None:
                self.post_data.seek(0)
                await psql(self.target, _spooled(self.post_data), TargetError, what="post-data")
        finally:
            if self.loads is not None:
                await self.loads.close()
            if self.post_data is not None:
                self.post_data.close()

    def _settings(self) -> dict[str, str]:
        source = self.reader.source or {}
        if source.get("kind") != "postgresql":
            raise ConfigError(
                f"job {self.reader.job} is a copy of a {source.get('kind', 'unknown')} source, "
                "not of a PostgreSQL database",
                hint="restore it into a directory with --out DIR",
            )
        return copy_settings(source)

    async def _begin(self, entry: Entry) -> _Stream:
        path = entry.path
        if path == b"ddl/pre-data.sql":
            self.pre_data = True
        elif not self.pre_data and path != b"ddl/post-data.sql":
            raise IntegrityError(
                f"the copy of job {self.reader.job} has no ddl/pre-data.sql: the send that made "
                "it could not dump the schema",
                hint="see that send's failures, fix them and send again",
            )
        if entry.kind == "table":
            assert self.loads is not None  # noqa: S101 - created at the first entry
            return await self.loads.begin(entry, self.progress)
        if path == b"ddl/post-data.sql":
            self.post_data = tempfile.SpooledTemporaryFile(SPOOL_MEMORY)  # noqa: SIM115
            return _Spool(self.post_data)
        if path in (b"ddl/pre-data.sql", b"sequences.sql"):
            return _Script(self.target, path.decode())
        if path.startswith(b"large-objects/") and path[14:].isdigit():
            self.progress.large_objects += 1
            return await _LargeObject.open(self.conn, int(path[14:]))
        log.warning("ignoring %s: not part of a PostgreSQL copy", path.decode("utf-8", "replace"))
        return _Stream()


def copy_settings(source: dict[str, Any]) -> dict[str, str]:
    """The session settings the copy's text was written under (only those that shape it)."""
    settings: dict[str, str] = {}
    for item in str(source.get("copy_settings", "")).split(";"):
        name, _, value = item.partition("=")
        if name in TEXT_SETTINGS:
            settings[name] = value
    return settings


class _Stream:
    """What to do with one stream's pieces (the base ignores them)."""

    async def feed(self, data: bytes) -> None:
        pass

    async def end(self, end: End) -> None:
        pass


class _Spool(_Stream):
    def __init__(self, file: IO[bytes]) -> None:
        self.file = file

    async def feed(self, data: bytes) -> None:
        await asyncio.to_thread(self.file.write, data)


class _Script(_Stream):
    """SQL run by psql as it arrives; the stream's end waits for psql to finish."""

    def __init__(self, target: ConnInfo, what: str) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_PIECES)
        self.task = asyncio.create_task(psql(target, _drain(self.queue), TargetError, what=what))

    async def feed(self, data: bytes) -> None:
        await _put(self.queue, data, self.task)

    async def end(self, end: End) -> None:
        await _put(self.queue, None, self.task)
        await self.task


class _LargeObject(_Stream):
    def __init__(self, conn: asyncpg.Connection, oid: int) -> None:
        self.conn = conn
        self.oid = oid
        self.offset = 0

    @classmethod
    async def open(cls, conn: asyncpg.Connection, oid: int) -> _LargeObject:
        """pre-data created it (``lo_create``) unless the copy was made without its schema."""
        await conn.execute(
            "SELECT lo_create($1::oid) WHERE NOT EXISTS "
            "(SELECT 1 FROM pg_largeobject_metadata WHERE oid = $1::oid)",
            oid,
        )
        return cls(conn, oid)

    async def feed(self, data: bytes) -> None:
        await self.conn.execute("SELECT lo_put($1::oid, $2, $3)", self.oid, self.offset, data)
        self.offset += len(data)


class _Loads:
    """COPYs into tables on up to ``jobs`` connections at once (one or more per table)."""

    def __init__(
        self, target: ConnInfo, settings: dict[str, str], jobs: int, split_after: int | None
    ) -> None:
        self.target = target
        self.settings = settings
        self.idle: asyncio.Queue[asyncpg.Connection] = asyncio.Queue()
        self.opened = 0
        self.jobs = jobs
        self.split_after = split_after
        self.tasks: set[asyncio.Task[None]] = set()

    async def begin(self, entry: Entry, progress: PgRestoreProgress) -> _Table:
        self._check()
        table = _Table(entry, progress, self)
        conn = await self.spare()
        if conn is None:
            conn = await self.idle.get()
        table.add_lane(conn)
        return table

    async def spare(self) -> asyncpg.Connection | None:
        """A connection free now (idle, or a new one within ``jobs``), else None."""
        if not self.idle.empty():
            return self.idle.get_nowait()
        if self.opened >= self.jobs:
            return None
        self.opened += 1
        try:
            return await self.target.connect(
                TargetError, application_name="transferd-restore-copy", settings=self.settings
            )
        except BaseException:
            self.opened -= 1
            raise

    def start(self, conn: asyncpg.Connection, lane: _Lane) -> asyncio.Task[None]:
        task = asyncio.create_task(self._load(conn, lane))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _load(self, conn: asyncpg.Connection, lane: _Lane) -> None:
        try:
            await lane.copy(conn)
        finally:
            self.idle.put_nowait(conn)

    def _check(self) -> None:
        for task in self.tasks:
            if task.done() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def finish(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        while not self.idle.empty():
            await self.idle.get_nowait().close()


class _Table(_Stream):
    """One table's stream, fed to one COPY, or to several once it is large (module docstring)."""

    def __init__(self, entry: Entry, progress: PgRestoreProgress, loads: _Loads) -> None:
        record = entry.record
        self.schema = str(record.get("schema"))
        self.name = str(record.get("name"))
        self.display = f"{self.schema}.{self.name}"
        if record.get("format") != "copy-text":
            raise ConfigError(f"table {self.display} is in format {record.get('format')!r}, "
                              "which this transferd cannot restore")  # fmt: skip
        self.columns = [str(c[0]) for c in record.get("columns", [])]
        self.progress = progress
        self.loads = loads
        self.rows = 0
        self.fed = 0
        self.tail = b""
        """The start of a row not ended yet: it goes to a COPY with the rest of its row."""
        self.lanes: list[_Lane] = []
        self.loading = 0
        self.turn = 0

    def add_lane(self, conn: asyncpg.Connection) -> None:
        lane = _Lane(self)
        lane.task = self.loads.start(conn, lane)
        self.lanes.append(lane)
        self.loading += 1

    def lane_done(self) -> None:
        self.loading -= 1
        if not self.loading:
            self.progress.tables += 1

    async def feed(self, data: bytes) -> None:
        self.rows += data.count(b"\n")
        self.fed += len(data)
        split_after = self.loads.split_after
        if split_after is None:
            await self.lanes[0].put(data)
            return
        if self.fed > split_after * len(self.lanes):
            conn = await self.loads.spare()
            if conn is not None:
                self.add_lane(conn)
        # whole rows only: with several COPYs, a row's two halves must not go to two of them
        cut = data.rfind(b"\n") + 1
        if not cut:
            self.tail += data
            return
        rows, self.tail = self.tail + data[:cut], data[cut:]
        # the COPY with the fewest blocks waiting; among equals, each in turn (an idle COPY
        # would otherwise leave all to the first)
        self.turn += 1
        n = self.turn % len(self.lanes)
        await min(self.lanes[n:] + self.lanes[:n], key=lambda lane: lane.queue.qsize()).put(rows)

    async def end(self, end: End) -> None:
        expected = end.record.get("rows")
        if expected is not None and expected != self.rows:
            raise IntegrityError(
                f"table {self.display}: the catalog says {expected} rows, its stream holds "
                f"{self.rows}"
            )
        self.progress.rows += self.rows
        if self.tail:  # COPY takes a last line without its line feed; the row count said so
            await self.lanes[0].put(self.tail)
        for lane in self.lanes:
            await lane.put(None)


class _Lane:
    """One COPY into a table, fed from a queue."""

    def __init__(self, table: _Table) -> None:
        self.table = table
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_PIECES)
        self.task: asyncio.Task[None] | None = None

    async def put(self, data: bytes | None) -> None:
        assert self.task is not None  # noqa: S101 - set by _Table.add_lane
        await _put(self.queue, data, self.task)

    async def copy(self, conn: asyncpg.Connection) -> None:
        t = self.table
        try:
            # text format, the columns by name (none: a table without columns still has rows)
            await conn.copy_to_table(
                t.name, schema_name=t.schema, columns=t.columns or None,
                source=_drain(self.queue),
            )  # fmt: skip
        except asyncpg.PostgresError as e:
            raise TargetError(f"cannot load table {t.display}: {e}") from None
        t.lane_done()


async def _drain(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (data := await queue.get()) is not None:
        yield data


async def _put(
    queue: asyncio.Queue[bytes | None], data: bytes | None, task: asyncio.Task[Any]
) -> None:
    """Queue ``data`` unless the consumer failed: then its error, not a wait that never ends."""
    put = asyncio.create_task(queue.put(data))
    done, _ = await asyncio.wait({put, task}, return_when=asyncio.FIRST_COMPLETED)
    if put not in done:
        put.cancel()
        task.result()  # raises the consumer's error
        raise TargetError("the restore stopped reading a stream before its end")


async def _spooled(file: IO[bytes]) -> AsyncIterator[bytes]:
    while block := await asyncio.to_thread(file.read, 1024 * 1024):
        yield block
