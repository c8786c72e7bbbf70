"""A consistent snapshot of a live PostgreSQL database, read as a source.

What one run yields, all read in one snapshot (see pg_snapshot):

``ddl/pre-data.sql``, ``ddl/post-data.sql``
    ``pg_dump --section=pre-data`` / ``post-data`` with ``--snapshot``: types, tables, functions,
    large objects' ownership; then indexes, constraints, triggers. pg_dump knows every kind of
    object, so the schema is its plain SQL, replayed with psql.
``sequences.sql``
    ``SELECT pg_catalog.setval(…)`` for each sequence pg_dump defines.
``tables/<schema>/<table>``
    each table's rows as ``COPY … TO STDOUT`` text (catalog ``format: "copy-text"``, UTF-8, the
    session settings of pg_snapshot.SESSION_SETTINGS); a ``/`` or ``%`` in a name is written
    ``%2F`` / ``%25`` (and a name ``.`` or ``..`` as ``%2E``), the catalog record keeps the names.
``large-objects/<oid>``
    each large object's bytes.

The paths sort so that a reader taking the catalog in order meets the schema before the data;
protocol/POSTGRESQL.md describes the layout for a reader without this code. Tables are read
largest first by ``CopyReader``, several ranges at once; the rest on the snapshot's connection.

Fingerprints carry the snapshot's token: an entry is reused only by a run in the same snapshot
(``--snapshot`` pinned), so a finished job never mixes snapshots; a new snapshot reads everything
again, and only chunks the host does not hold are uploaded.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import shlex
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import asyncpg

from transferd.core.source_entry import SourceEntry
from transferd.errors import ConfigError, SnapshotGoneError, SourceError
from transferd.sources.base import InlineItem, Item, one_per_batch
from transferd.sources.postgres import conninfo, listing
from transferd.sources.postgres.copy import BUFFER_BYTES, RANGE_PAGES, CopyReader
from transferd.sources.postgres.listing import Selection, Table
from transferd.sources.postgres.snapshot import SnapshotHolder, locks_released, quote_literal
from transferd.sources.postgres.tools import pg_dump

log = logging.getLogger(__name__)

TABLE_FORMAT = "copy-text"
"""PostgreSQL's COPY text format (tab-separated, ``\\N`` for NULL, backslash escapes), UTF-8."""
FILE_MODE = 0o600
LO_INLINE = 256 * 1024
"""Large objects up to this size are read in batches of LO_BATCH, the rest in LO_BLOCK pieces."""
LO_BATCH = 64
LO_BLOCK = 4 * 1024 * 1024


@dataclass(frozen=True)
class PgOptions:
    snapshot: str | None = None
    jobs: int = 4
    """Connections reading tables at once."""
    selection: Selection = field(default_factory=Selection)
    password_file: Path | None = None
    range_pages: int = RANGE_PAGES
    buffer_bytes: int = BUFFER_BYTES
    rewritten: Callable[[Table], Awaitable[bool]] | None = field(default=None, compare=False)
    """Follow mode: asked about a table rewritten after the snapshot; True when its TRUNCATE is
    in the changes, so that what the snapshot still reads of it is accepted (POSTGRESQL.md 7)."""
    identity_extra: Mapping[str, str | int] = field(default_factory=dict, compare=False)
    """Members the source record gains (follow mode: the slot, its consistent point)."""

    follow: Mapping[str, Any] | None = field(default=None, compare=False)
    """A daemon job's follow mode (send/follow.py ``FollowOptions``): ``publication``,
    ``keep_slot``, ``cutover_at_end``, ``max_retained_wal``; None: a plain copy."""

    def settings(self) -> dict[str, Any]:
        """What a daemon job keeps (JSON): parallelism and the selection, never a password."""
        selection = {k: list(v) if isinstance(v, tuple) else v
                     for k, v in asdict(self.selection).items()}  # fmt: skip
        out: dict[str, Any] = {"jobs": self.jobs, "selection": selection}
        if self.follow is not None:
            out["follow"] = dict(self.follow)
        return out

    @classmethod
    def from_settings(cls, value: Any, snapshot: str | None = None) -> PgOptions:
        """``settings()`` read back (a daemon job's definition); ConfigError if malformed."""
        if value is None:
            return cls(snapshot=snapshot)
        names = {f.name for f in fields(Selection)}
        selection = value.get("selection", {}) if isinstance(value, dict) else None
        jobs = value.get("jobs", 4) if isinstance(value, dict) else None
        if (
            not isinstance(selection, dict)
            or not set(selection) <= names
            or not isinstance(jobs, int)
            or isinstance(jobs, bool)
            or jobs < 1
            or set(value) - {"jobs", "selection", "follow"}
            or not isinstance(value.get("follow", {}), dict)
            or set(value.get("follow") or {}) - FOLLOW_SETTINGS
        ):
            raise ConfigError(f"PostgreSQL options {value!r} are not jobs and a selection")
        items: dict[str, Any] = {}
        defaults = Selection()
        for k, v in selection.items():
            patterns = isinstance(getattr(defaults, k), tuple)
            if patterns and isinstance(v, list) and all(isinstance(p, str) for p in v):
                items[k] = tuple(v)
            elif not patterns and (isinstance(v, bool) or (v is None and k == "large_objects")):
                items[k] = v
            else:
                raise ConfigError(f"PostgreSQL option {k} = {v!r} is not valid")
        return cls(snapshot=snapshot, jobs=jobs, selection=Selection(**items),
                   follow=value.get("follow"))  # fmt: skip


FOLLOW_SETTINGS = frozenset({"publication", "keep_slot", "cutover_at_end", "max_retained_wal"})


def path_part(name: str) -> str:
    """A schema or table name as one path component (reversible, see the module docstring)."""
    part = name.replace("%", "%25").replace("/", "%2F")
    return part.replace(".", "%2E") if part in (".", "..") else part


def table_path(table: Table) -> bytes:
    return f"tables/{path_part(table.schema)}/{path_part(table.name)}".encode()


@dataclass
class _Opened:
    holder: SnapshotHolder
    tables: list[Table]
    reader: CopyReader
    mtime_ns: int


class PostgresSource:
    kind = "postgresql"
    independent_streams = False
    """Tables are read through the readers the listing drives, in the listing's order."""

    def __init__(self, spec: str, options: PgOptions | None = None) -> None:
        self.options = options or PgOptions()
        self.info = conninfo.parse(spec, self.options.password_file)
        self.description = self.info.description
        self._opening: asyncio.Task[_Opened] | None = None
        self._opened: _Opened | None = None
        self.large_objects = 0

    # --- opening: snapshot, listing, readers ------------------------------------------------------

    async def open(self) -> _Opened:
        """Connect, take (or adopt) the snapshot and list what to copy; once, however many ask."""
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
        return await asyncio.shield(self._opening)

    async def _open(self) -> _Opened:
        holder = await SnapshotHolder.open(self.info, self.options.snapshot)
        try:
            async with locks_released(holder.conn):
                tables = await listing.list_tables(holder.conn, self.options.selection)
        except asyncpg.PostgresError as e:
            await holder.close()
            raise SourceError(f"cannot list the tables of {self.description}: {e}") from None
        reader = CopyReader(
            self.info, holder.snapshot.id, tables, workers=self.options.jobs,
            range_pages=self.options.range_pages, buffer_bytes=self.options.buffer_bytes,
            rewritten=self.options.rewritten,
        )  # fmt: skip
        reader.start()
        snap = holder.snapshot
        log.info(
            "%s snapshot %s of %s at %s (PostgreSQL %s): %d tables, %.2f GiB on disk",
            "exported" if snap.exported else "adopted", snap.id, self.description, snap.taken,
            holder.server.version, len(tables), sum(t.size for t in tables) / 2**30,
        )  # fmt: skip
        taken = datetime.datetime.fromisoformat(holder.snapshot.taken.replace("Z", "+00:00"))
        mtime_ns = int(taken.timestamp()) * 10**9 + taken.microsecond * 1000
        self._opened = _Opened(holder, tables, reader, mtime_ns)
        return self._opened

    @property
    def snapshot_id(self) -> str | None:
        return None if self._opened is None else self._opened.holder.snapshot.id

    @property
    def reader(self) -> CopyReader | None:
        return None if self._opened is None else self._opened.reader

    def identity(self) -> dict[str, Any]:
        ident: dict[str, Any] = {
            "kind": self.kind,
            "host": self.info.server,
            "user": self.info.user,
            "client": socket.gethostname(),
        }
        o = self._opened
        if o is not None:
            ident.update(o.holder.identity())
            ident["tables"] = len(o.tables)
            ident["large_objects"] = self.large_objects
        # shell-quoted, so that verify --against can read the same selection back
        ident["selection"] = shlex.join(self.options.selection.options())
        ident.update(self.options.identity_extra)
        return ident

    @property
    def tables(self) -> list[Table]:
        """The tables listed in the snapshot (empty before ``open``)."""
        return [] if self._opened is None else list(self._opened.tables)

    async def size_hint(self) -> int | None:
        opened = await self.open()
        return sum(t.size for t in opened.tables)

    async def close(self) -> None:
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
            await asyncio.gather(self._opening, return_exceptions=True)
        if self._opened is not None:
            await self._opened.reader.close()
            await self._opened.holder.close()

    # --- items ----------------------------------------------------------------------------------

    def batches(self) -> AsyncGenerator[Sequence[Item], None]:
        return one_per_batch(self.items())

    async def items(self) -> AsyncIterator[Item]:
        """Everything to copy, once per source. When the items end, early or not, the table
        readers stop; the snapshot stays held until ``close()``, for a later run to adopt."""
        o = await self.open()
        try:
            async for item in self._items(o):
                yield item
        finally:
            await o.reader.close()

    async def _items(self, o: _Opened) -> AsyncIterator[Item]:
        token = o.holder.snapshot.token
        sel = self.options.selection
        for section in ("pre-data", "post-data"):
            yield DumpItem(
                self, SourceEntry(f"ddl/{section}.sql".encode(), "file", FILE_MODE, o.mtime_ns,
                            fingerprint=f"pg1:{token}:{section}"),
                [f"--snapshot={o.holder.snapshot.id}", f"--section={section}",
                 *sel.pg_dump_args()],
            )  # fmt: skip
        yield await self._sequences(o, token)
        for table in o.tables:
            item = TableItem(o.reader, table, f"pg1:{token}:{table.oid}")
            yield item
            if not item.started:  # the pipeline reused it: stop reading it ahead
                o.reader.skip(table)
            if o.reader.fatal is not None:
                raise o.reader.fatal
        if sel.with_large_objects:
            async for lo in self._large_objects(o, token):
                yield lo

    async def _sequences(self, o: _Opened, token: str) -> InlineItem:
        try:
            async with locks_released(o.holder.conn):
                seqs = await listing.list_sequences(o.holder.conn, self.options.selection)
                values = await listing.sequence_values(o.holder.conn, seqs)
        except _HOLDER_ERRORS as e:
            raise _holder_error(o.holder, "the sequences", e) from None
        lines = [
            f"-- transferd: the values of {len(values)} sequences. Sequences are not "
            "transactional: these are their values when read, just after the snapshot.\n"
        ]
        for seq, last, called in values:
            lines.append(
                f"SELECT pg_catalog.setval({quote_literal(seq.qualified)}, {last}, "
                f"{'true' if called else 'false'});\n"
            )
        data = "".join(lines).encode()
        entry = SourceEntry(b"sequences.sql", "file", FILE_MODE, o.mtime_ns, len(data),
                      fingerprint=f"pg1:{token}:sequences")  # fmt: skip
        return InlineItem(entry, data)

    async def _large_objects(self, o: _Opened, token: str) -> AsyncIterator[Item]:
        conn = o.holder.conn
        try:
            async for oids in listing.large_object_oids(conn):
                for start in range(0, len(oids), LO_BATCH):
                    batch = oids[start : start + LO_BATCH]
                    async with locks_released(conn):
                        rows = await conn.fetch(
                            "SELECT m.oid, lo_get(m.oid, 0, $2) AS data "
                            "FROM unnest($1::oid[]) AS m(oid) ORDER BY m.oid",
                            batch,
                            LO_INLINE + 1,
                        )
                    for row in rows:
                        oid, data = int(row["oid"]), bytes(row["data"])
                        self.large_objects += 1
                        path = f"large-objects/{oid}".encode()
                        fingerprint = f"pg1:{token}:lo:{oid}"
                        if len(data) <= LO_INLINE:
                            entry = SourceEntry(path, "file", FILE_MODE, o.mtime_ns, len(data),
                                                fingerprint=fingerprint)  # fmt: skip
                            yield InlineItem(entry, data)
                        else:
                            entry = SourceEntry(path, "file", FILE_MODE, o.mtime_ns,
                                                fingerprint=fingerprint)  # fmt: skip
                            yield LargeObjectItem(conn, oid, entry)
        except _HOLDER_ERRORS as e:
            raise _holder_error(o.holder, "the large objects", e) from None


class TableItem:
    """One table's COPY text, read by the shared CopyReader; its row count kept on the way."""

    def __init__(self, reader: CopyReader, table: Table, fingerprint: str) -> None:
        self.reader = reader
        self.table = table
        self.entry = SourceEntry(table_path(table), "table", fingerprint=fingerprint)
        self.started = False
        self.rows = 0

    async def blocks(self) -> AsyncIterator[bytes | memoryview]:
        self.started = True
        self.rows = 0
        async for block in self.reader.stream(self.table):
            # COPY text escapes a newline inside a value as \n: every 0x0A ends a row.
            self.rows += block.count(b"\n")
            yield block

    async def finish(self, size: int, blake3: str) -> SourceEntry:
        t = self.table
        extra: dict[str, Any] = {
            "schema": t.schema,
            "name": t.name,
            "format": TABLE_FORMAT,
            "encoding": "UTF8",
            "columns": [[c.name, c.type] for c in t.columns],
            "rows": self.rows,
        }
        e = self.entry
        return SourceEntry(
            e.path, e.kind, None, None, size, None, blake3, canonical_json(extra), e.fingerprint
        )


class DumpItem:
    """A section of pg_dump's plain output, streamed from the tool."""

    def __init__(self, source: PostgresSource, entry: SourceEntry, args: list[str]) -> None:
        self.source = source
        self.entry = entry
        self.args = args

    async def blocks(self) -> AsyncIterator[bytes | memoryview]:
        async for block in pg_dump(self.source.info, self.args, SourceError):
            yield block

    async def finish(self, size: int, blake3: str) -> SourceEntry:
        e = self.entry
        return SourceEntry(
            e.path, e.kind, e.mode, e.mtime_ns, size, None, blake3, None, e.fingerprint
        )


class LargeObjectItem:
    """A large object too big to read whole: ``lo_get`` in 4 MiB pieces, in the snapshot."""

    def __init__(self, conn: asyncpg.Connection, oid: int, entry: SourceEntry) -> None:
        self.conn = conn
        self.oid = oid
        self.entry = entry

    async def blocks(self) -> AsyncIterator[bytes | memoryview]:
        offset = 0
        while True:
            try:
                async with locks_released(self.conn):
                    data = await self.conn.fetchval(
                        "SELECT lo_get($1::oid, $2, $3)", self.oid, offset, LO_BLOCK
                    )
            except _HOLDER_ERRORS as e:
                if self.conn.is_closed():
                    raise SourceError(f"lost the connection reading large object {self.oid}: "
                                      f"{e}") from None  # fmt: skip
                raise SourceError(f"cannot read large object {self.oid}: {e}") from None
            if data:
                yield bytes(data)
                offset += len(data)
            if not data or len(data) < LO_BLOCK:
                return

    async def finish(self, size: int, blake3: str) -> SourceEntry:
        e = self.entry
        return SourceEntry(
            e.path, e.kind, e.mode, e.mtime_ns, size, None, blake3, None, e.fingerprint
        )


_HOLDER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


def _holder_error(holder: SnapshotHolder, what: str, e: BaseException) -> SourceError:
    """The snapshot's connection failed: when it is gone, so is the snapshot."""
    if holder.conn.is_closed() or isinstance(e, asyncpg.PostgresConnectionError | OSError):
        return SnapshotGoneError(holder.snapshot.id, f"lost its connection reading {what}: {e}")
    return SourceError(f"cannot read {what}: {e}")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
