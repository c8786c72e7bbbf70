"""Read tables with ``COPY … TO STDOUT`` on several connections at once, handing the bytes over in
order, in bounded memory.

The send pipeline takes one stream at a time, in order. One COPY runs at the speed of one server
backend (about 140 MB/s here), so a large table read on one connection is as slow as the server's
slowest core. Each table is therefore cut into *ranges* of ``range_pages`` heap pages, read as
``COPY (SELECT cols FROM ONLY t WHERE ctid >= '(a,0)' AND ctid < '(b,0)') TO STDOUT`` (a TID
range scan, PostgreSQL 14+): ranges run on ``workers`` connections at once, each into a buffer of
at most ``buffer_bytes``, and the consumer drains them in table and page order. With synchronized
scans and parallel plans off, the concatenated ranges are byte for byte the COPY of the whole
table. Ranges of the next tables start while the current one is drained, so many small tables
are read in parallel too. Memory: at most ``2 * workers`` ranges are started and not yet drained,
each holding at most ``buffer_bytes``.

Every worker adopts the run's snapshot. Before each range it takes ``ACCESS SHARE`` on the table
inside a savepoint and checks that the table is still the one the snapshot lists (same oid, same
name, same relfilenode): a table dropped, renamed or rewritten (TRUNCATE, VACUUM FULL, CLUSTER,
ALTER TABLE … TYPE) after the snapshot would otherwise be read empty or from its new files, which
the snapshot does not protect. Rolling back to the savepoint after the range releases the lock, so
a copy that lasts days does not block the application's DDL for days.

A worker whose connection is lost (killed backend, network cut) reconnects, adopts the snapshot
again and reads the range again, checking that the bytes already handed over come out the same.
When the snapshot can no longer be adopted, the error is fatal for the run (``fatal``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

import asyncpg
import blake3

from transferd.errors import ReadSkippedError, SourceError, TableGoneError
from transferd.sources.postgres.conninfo import ConnInfo
from transferd.sources.postgres.listing import Table
from transferd.sources.postgres.snapshot import SESSION_SETTINGS, adopt, quote_ident

log = logging.getLogger(__name__)

RANGE_PAGES = 2048
"""Heap pages per range: 16 MiB of heap, about 12 MiB of COPY text; small enough that a window of
ranges fits in memory, large enough that the few statements around each cost nothing."""
BUFFER_BYTES = 16 * 1024 * 1024
"""What one started range may hold before its COPY waits for the consumer."""
MIN_BLOCK = 1024 * 1024
MAX_BLOCK = 4 * 1024 * 1024
"""Blocks handed to the pipeline: the driver's ~64 KiB pieces joined, so a thread hop per block
costs nothing."""
RETRIES = 3
"""Lost connections tolerated per range before the table is given up for this run."""

_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a protocol state left behind by a connection cut mid-query
    ConnectionError,
    OSError,
)
"""The connection is gone, not the table: reconnect and read again."""


@dataclass(eq=False)
class _Range:
    table: Table
    sql: str
    pieces: deque[bytes] = field(default_factory=deque)
    buffered: int = 0
    done: bool = False
    error: BaseException | None = None
    cancelled: bool = False
    retired: bool = False
    delivered: int = 0
    delivered_hash: blake3.blake3 = field(default_factory=blake3.blake3)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    room: asyncio.Event = field(default_factory=asyncio.Event)

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.changed.set()


class CopyReader:
    """Streams of the given tables' COPY text, in the given order, read ahead in parallel.

    One consumer drains one table at a time, in the order given, or ``skip``s it. Ranges are
    planned lazily: a table of a million ranges costs nothing until its ranges start."""

    def __init__(
        self,
        info: ConnInfo,
        snapshot_id: str,
        tables: Sequence[Table],
        *,
        workers: int = 4,
        range_pages: int = RANGE_PAGES,
        buffer_bytes: int = BUFFER_BYTES,
        rewritten: Callable[[Table], Awaitable[bool]] | None = None,
    ) -> None:
        self.info = info
        self.rewritten = rewritten
        """Follow mode (sources/postgres/source.py PgOptions.rewritten)."""
        self._nodes: dict[int, int] = {}
        """Table oid -> the relfilenode accepted after a TRUNCATE the changes carry."""
        self.snapshot_id = snapshot_id
        self.workers = max(1, workers)
        self.range_pages = max(1, range_pages)
        self.buffer_bytes = max(1, buffer_bytes)
        self.min_block = min(MIN_BLOCK, self.buffer_bytes)
        """A range's COPY waits once its buffer is full: the consumer must take less than that."""
        self.window = 2 * self.workers
        self.fatal: SourceError | None = None
        self.retries = 0
        """Ranges read again after a lost connection (for tests and the log)."""
        self._plan = self._planned(list(tables))
        self._started: dict[int, dict[int, _Range]] = {}
        """Ranges started and not yet retired, by table oid and index in the table."""
        self._skipped: set[int] = set()
        self._active = 0
        self._slot = asyncio.Event()
        """Set when a range is retired: a worker may start the next one."""
        self._progress = asyncio.Event()
        """Set when a range starts or fails fatally: the consumer may find the one it waits for."""
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"pg-copy-{i}") for i in range(self.workers)
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _planned(self, tables: list[Table]) -> Iterator[tuple[Table, int, str]]:
        for table in tables:
            for i, sql in enumerate(range_sql(table, self.range_pages)):
                yield table, i, sql

    # --- the consumer side ----------------------------------------------------------------------

    async def stream(self, table: Table) -> AsyncIterator[bytes]:
        """The table's COPY text in blocks of 1 to 4 MiB; ``SourceError`` if it cannot be read."""
        try:
            for i in range(range_count(table, self.range_pages)):
                rng = await self._started_range(table, i)
                while True:
                    if rng.error is not None:
                        raise rng.error
                    if self.fatal is not None:
                        raise self.fatal
                    if rng.buffered >= self.min_block or (rng.done and rng.buffered):
                        yield self._take(rng)
                    elif rng.done:
                        break
                    else:
                        rng.changed.clear()
                        await rng.changed.wait()
                self._retire(rng)
        finally:
            self.skip(table)

    async def _started_range(self, table: Table, i: int) -> _Range:
        while True:
            if self.fatal is not None:
                raise self.fatal
            rng = self._started.get(table.oid, {}).get(i)
            if rng is not None:
                return rng
            self._progress.clear()
            await self._progress.wait()

    def _take(self, rng: _Range) -> bytes:
        parts = []
        size = 0
        while rng.pieces and size < MAX_BLOCK:
            piece = rng.pieces.popleft()
            parts.append(piece)
            size += len(piece)
        rng.buffered -= size
        rng.room.set()
        block = b"".join(parts)
        rng.delivered += size
        rng.delivered_hash.update(block)
        return block

    def skip(self, table: Table) -> None:
        """Stop reading ``table``: the consumer does not want it, or gave up on it."""
        self._skipped.add(table.oid)
        for rng in list(self._started.get(table.oid, {}).values()):
            rng.cancelled = True
            rng.pieces.clear()
            rng.buffered = 0
            rng.room.set()
            if rng.done or rng.error is not None:
                self._retire(rng)
            # a running one is retired by its worker once its COPY has stopped

    def _retire(self, rng: _Range) -> None:
        if rng.retired:
            return
        rng.retired = True
        ranges = self._started.get(rng.table.oid, {})
        for i, r in list(ranges.items()):
            if r is rng:
                del ranges[i]
        if not ranges:
            self._started.pop(rng.table.oid, None)
        self._active -= 1
        self._slot.set()

    # --- the workers ------------------------------------------------------------------------------

    async def _next(self) -> _Range | None:
        while self._active >= self.window:
            self._slot.clear()
            await self._slot.wait()
        for table, i, sql in self._plan:
            if table.oid in self._skipped:
                continue
            rng = _Range(table, sql)
            self._started.setdefault(table.oid, {})[i] = rng
            self._active += 1
            self._progress.set()
            return rng
        return None

    async def _worker(self) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while (rng := await self._next()) is not None:
                conn = await self._run(conn, rng)
                if rng.cancelled:
                    self._retire(rng)
        except SourceError as e:  # fatal: no connection with the snapshot can be had
            self._die(e)
        except Exception as e:  # a worker that died quietly would stall the run: make it fatal
            log.exception("a table reader failed")
            self._die(SourceError(f"reading tables failed: {type(e).__name__}: {e}"))
        finally:
            if conn is not None:
                conn.terminate()

    def _die(self, error: SourceError) -> None:
        if self.fatal is None:
            self.fatal = error
        self._progress.set()
        for ranges in self._started.values():
            for r in ranges.values():
                r.changed.set()

    async def _connect(self) -> asyncpg.Connection:
        conn = await self.info.connect(
            SourceError, application_name="transferd-copy", settings=SESSION_SETTINGS
        )
        try:
            await adopt(conn, self.snapshot_id)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def _run(self, conn: asyncpg.Connection | None, rng: _Range) -> asyncpg.Connection | None:
        """Read one range (again after a lost connection); returns the connection to go on with."""
        lost = 0
        while not rng.cancelled:
            if conn is None:
                conn = await self._connect()
            try:
                await self._copy(conn, rng)
                return conn
            except ReadSkippedError:
                conn.terminate()  # a cancelled COPY leaves the protocol mid-stream: start afresh
                return None
            except _LOST as e:
                conn.terminate()
                conn = None
                lost += 1
                if lost > RETRIES or self.fatal is not None:
                    rng.fail(SourceError(f"{rng.table.display}: connection lost {lost} times: {e}"))
                    return None
                self.retries += 1
                log.warning(
                    "lost the connection while reading %s (%s); reading that part again",
                    rng.table.display, _reason(e),
                )  # fmt: skip
                rng.pieces.clear()
                rng.buffered = 0
            except asyncpg.PostgresError as e:
                rng.fail(_table_error(rng.table, e))
                return await self._recover(conn)
            except SourceError as e:
                rng.fail(e)
                return await self._recover(conn)
        return conn

    async def _recover(self, conn: asyncpg.Connection) -> asyncpg.Connection | None:
        """Back to the transaction as it was before the range (locks released), or a new one."""
        try:
            await conn.execute("ROLLBACK TO SAVEPOINT transferd_range")
            await conn.execute("RELEASE SAVEPOINT transferd_range")
            return conn
        except (asyncpg.PostgresError, *_LOST):
            conn.terminate()
            return None

    async def _copy(self, conn: asyncpg.Connection, rng: _Range) -> None:
        t = rng.table
        try:
            await conn.execute(
                f"SAVEPOINT transferd_range; LOCK TABLE {t.qualified} IN ACCESS SHARE MODE"
            )
        except asyncpg.UndefinedTableError:
            raise _gone(t) from None
        row = await conn.fetchrow(
            "SELECT pg_relation_filenode($1::oid) AS node, to_regclass($2)::oid AS oid",
            t.oid,
            t.qualified,
        )
        if row is None or row["oid"] != t.oid:
            raise _gone(t)
        if row["node"] != self._nodes.get(t.oid, t.relfilenode):
            # A TRUNCATE after the snapshot gave the table new files, which the snapshot reads
            # empty: right only when the TRUNCATE is in the changes that follow the snapshot.
            if self.rewritten is None or not await self.rewritten(t):
                raise _gone(t)
            log.info("table %s was truncated after the snapshot; the changes carry it", t.display)
            self._nodes[t.oid] = row["node"]
        skip, expected = rng.delivered, rng.delivered_hash.copy().digest()
        seen = blake3.blake3()

        async def sink(data: bytes) -> None:
            nonlocal skip
            if rng.cancelled:
                raise ReadSkippedError
            if skip:
                head = data[:skip]
                seen.update(head)
                skip -= len(head)
                data = data[len(head) :]
                if not skip and seen.digest() != expected:
                    raise SourceError(
                        f"{t.display}: read again after a lost connection, its rows came out "
                        "different: the snapshot did not hold"
                    )
                if not data:
                    return
            while rng.buffered >= self.buffer_bytes and not rng.cancelled:
                rng.room.clear()
                await rng.room.wait()
            if rng.cancelled:
                raise ReadSkippedError
            rng.pieces.append(data)
            rng.buffered += len(data)
            rng.changed.set()

        await conn.copy_from_query(rng.sql, output=sink)
        await conn.execute(
            "ROLLBACK TO SAVEPOINT transferd_range; RELEASE SAVEPOINT transferd_range"
        )
        rng.done = True
        rng.changed.set()


def range_count(table: Table, range_pages: int) -> int:
    return max(1, -(-table.pages // range_pages))


def range_sql(table: Table, range_pages: int) -> Iterator[str]:
    """The queries whose COPY outputs, concatenated, are the table's COPY in physical order; the
    last range is open-ended, so pages added since the listing are read too."""
    cols = ", ".join(quote_ident(c.name) for c in table.columns)
    base = f"SELECT {cols} FROM ONLY {table.qualified}"  # noqa: S608 - quoted identifiers
    count = range_count(table, range_pages)
    if count == 1:
        yield base
        return
    for i in range(count):
        cond = f"ctid >= '({i * range_pages},0)'::tid"
        if i + 1 < count:
            cond += f" AND ctid < '({(i + 1) * range_pages},0)'::tid"
        yield f"{base} WHERE {cond}"


def _gone(t: Table) -> TableGoneError:
    return TableGoneError(
        f"table {t.display} was dropped, renamed or rewritten (TRUNCATE, VACUUM FULL, CLUSTER, "
        "ALTER TABLE) after the snapshot was taken: its rows as of the snapshot cannot be read",
        hint="run the same send again: it takes a new snapshot",
    )


def _table_error(t: Table, e: asyncpg.PostgresError) -> SourceError:
    if isinstance(e, asyncpg.UndefinedColumnError):
        return TableGoneError(f"table {t.display} lost a column after the snapshot was taken: {e}")
    return SourceError(f"cannot read table {t.display}: {_reason(e)}")


def _reason(e: BaseException) -> str:
    return str(getattr(e, "message", None) or e) or type(e).__name__
