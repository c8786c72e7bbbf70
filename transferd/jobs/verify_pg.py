"""Compare a stored copy of a PostgreSQL database with a live database: ``verify --against URL``.

The catalog's side comes from the walk of jobs/verify_deep.py: each table's schema, name, row
count and the BLAKE3 of its COPY text, each large object's size and BLAKE3. The live side is read
the way the copy was made (sources/pg_copy.py): in one new exported snapshot, the same selection
of tables (the catalog's ``selection``), each table's ``COPY`` text in physical order under the
same session settings, on several connections at once. Each table's rows are counted and its
text hashed as it streams; nothing is stored.

The hash compared is that of the COPY text in the table's physical order. A database restored by
transferd (one COPY per table, in stream order), or a source not written since the snapshot,
has the rows in the same order and therefore the same hash. A table whose rows are the same but
moved (VACUUM FULL, CLUSTER, an UPDATE that changed nothing) shows as ``differs`` with equal
row counts; the report says so.

Differences: ``source-only`` (a table or large object the database has and the copy does not),
``copy-only`` (the reverse), ``differs`` (row count, size or content). A database that cannot
be reached is ``unreadable``: nothing is then proven either way.
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import blake3

from transferd.errors import SourceError
from transferd.jobs.entries import show
from transferd.jobs.verify_deep import CatalogEntry
from transferd.report.model import Failure, Report
from transferd.sources import pg_conninfo, pg_listing
from transferd.sources.pg_copy import CopyReader
from transferd.sources.pg_listing import Selection, Table
from transferd.sources.pg_snapshot import SnapshotHolder, locks_released

HASH_INLINE = 1024 * 1024
"""Blocks up to this size are hashed on the event loop; larger ones on a thread."""


@dataclass
class _Copied:
    path: str
    rows: int | None
    size: int | None
    blake3: str | None
    seen: bool = False


class PgComparison:
    """The catalog's side, filled by ``add`` during the catalog walk; then ``compare``."""

    def __init__(self, spec: str, *, password_file: Path | None = None, jobs: int = 4) -> None:
        self.info = pg_conninfo.parse(spec, password_file)
        self.description = self.info.description
        self.jobs = max(1, jobs)
        self.tables: dict[tuple[str, str], _Copied] = {}
        self.large_objects: dict[int, _Copied] = {}

    def close(self) -> None:
        pass

    def add(self, item: CatalogEntry) -> None:
        e = item.entry
        rows = (item.end or {}).get("rows")
        copied = _Copied(show(e.path), rows, item.size, item.blake3)
        if e.kind == "table":
            self.tables[(str(e.record.get("schema")), str(e.record.get("name")))] = copied
        elif e.path.startswith(b"large-objects/") and e.path[14:].isdigit():
            self.large_objects[int(e.path[14:])] = copied

    async def compare(self, report: Report, workers: int) -> None:
        """Read the database in a new snapshot; report every difference with the copy."""
        source = report.source or {}
        if source.get("kind") != "postgresql":
            report.fail(Failure("differs", f"the copy is of a {source.get('kind')} source, "
                                "not of a PostgreSQL database"))  # fmt: skip
            return
        try:
            holder = await SnapshotHolder.open(self.info, None)
        except SourceError as e:
            report.fail(Failure("unreadable", f"{self.description}: {e.message}"))
            return
        try:
            selection = parse_selection(str(source.get("selection", "")))
            async with locks_released(holder.conn):
                tables = await pg_listing.list_tables(holder.conn, selection)
            await self._tables(report, tables, holder.snapshot.id)
            if selection.with_large_objects:
                await self._large_objects(report, holder.conn)
        except (SourceError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as e:
            message = e.message if isinstance(e, SourceError) else str(e)
            report.fail(Failure("unreadable", f"{self.description}: {message}"))
        finally:
            await holder.close()
        for what, items in (("table", self.tables.values()),
                            ("large object", self.large_objects.values())):  # fmt: skip
            for c in items:
                if not c.seen:
                    report.fail(Failure("copy-only", f"{c.path}: the copy has this {what}, "
                                        "the database does not", path=c.path))  # fmt: skip
        snap = holder.snapshot
        report.notes["matches-source"] = (
            f"{report.counts.get('source_tables', 0):,} tables and "
            f"{report.counts.get('source_large_objects', 0):,} large objects of "
            f"{self.description} compared in snapshot {snap.id} of {snap.taken}"
        )

    async def _tables(self, report: Report, tables: list[Table], snapshot: str) -> None:
        reader = CopyReader(self.info, snapshot, tables, workers=self.jobs)
        reader.start()
        try:
            for table in tables:
                rows, size, digest = await _measure(reader, table)
                report.count("source_entries")
                report.count("source_tables")
                report.count("source_rows", rows)
                report.count("source_bytes_hashed", size)
                self._check_table(report, table, rows, size, digest)
        finally:
            await reader.close()

    def _check_table(self, report: Report, t: Table, rows: int, size: int, digest: str) -> None:
        copied = self.tables.get((t.schema, t.name))
        name = f"table {t.display}"
        if copied is None:
            report.fail(Failure("source-only", f"{name}: the database has this table, the copy "
                                "does not", actual={"rows": rows, "size": size}))  # fmt: skip
            return
        copied.seen = True
        if digest == copied.blake3 and size == copied.size:
            return
        if rows != copied.rows:
            problem = f"has {rows:,} rows in the database, {copied.rows:,} in the copy"
        else:
            problem = (f"has the same {rows:,} rows count but other content (or the same rows "
                       "in another physical order: VACUUM FULL, CLUSTER, updates)")  # fmt: skip
        report.fail(
            Failure(
                "differs", f"{name} {problem}", path=copied.path,
                expected={"rows": copied.rows, "size": copied.size, "blake3": copied.blake3},
                actual={"rows": rows, "size": size, "blake3": digest},
            )
        )  # fmt: skip

    async def _large_objects(self, report: Report, conn: asyncpg.Connection) -> None:
        async for oids in pg_listing.large_object_oids(conn):
            for oid in oids:
                hasher = blake3.blake3()
                size = 0
                while True:
                    async with locks_released(conn):
                        data = await conn.fetchval(
                            "SELECT lo_get($1::oid, $2, $3)", oid, size, 4 << 20
                        )
                    hasher.update(data)
                    size += len(data)
                    if len(data) < 4 << 20:
                        break
                report.count("source_entries")
                report.count("source_large_objects")
                self._check_large_object(report, oid, size, hasher.hexdigest())

    def _check_large_object(self, report: Report, oid: int, size: int, digest: str) -> None:
        copied = self.large_objects.get(oid)
        if copied is None:
            report.fail(Failure("source-only", f"large object {oid}: the database has it, the "
                                "copy does not", actual={"size": size}))  # fmt: skip
            return
        copied.seen = True
        if (size, digest) != (copied.size, copied.blake3):
            report.fail(Failure("differs", f"large object {oid} has other content in the "
                                "database", path=copied.path,
                                expected={"size": copied.size, "blake3": copied.blake3},
                                actual={"size": size, "blake3": digest}))  # fmt: skip


async def _measure(reader: CopyReader, table: Table) -> tuple[int, int, str]:
    hasher = blake3.blake3()
    rows = size = 0
    async for block in reader.stream(table):
        rows += block.count(b"\n")
        size += len(block)
        if len(block) <= HASH_INLINE:
            hasher.update(block)
        else:
            await asyncio.to_thread(hasher.update, block)
    return rows, size, hasher.hexdigest()


def parse_selection(text: str) -> Selection:
    """The selection a copy was made with, from its catalog's ``selection`` (pg_dump's options)."""
    fields: dict[str, list[str]] = {}
    large_objects: Any = None
    for arg in shlex.split(text):
        flag, _, value = arg.partition("=")
        name = {"--schema": "include_schema", "--exclude-schema": "exclude_schema",
                "--table": "include_table", "--exclude-table": "exclude_table",
                "--exclude-table-data": "exclude_table_data"}.get(flag)  # fmt: skip
        if name is not None:
            fields.setdefault(name, []).append(value)
        elif flag in ("--blobs", "--no-blobs"):
            large_objects = flag == "--blobs"
    return Selection(**{k: tuple(v) for k, v in fields.items()}, large_objects=large_objects)
