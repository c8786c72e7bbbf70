"""Compare a stored copy of a PostgreSQL database with a live database: ``verify --against URL``.

The catalog's side comes from the walk of verify/deep.py: each table's schema, name, row
count and the BLAKE3 of its COPY text, each large object's size and BLAKE3. The live side is read
the way the copy was made (sources/postgres/copy.py): in one new exported snapshot, the same
selection of tables (the catalog's ``selection``), each table's ``COPY`` text in physical order
under the same session settings, on several connections at once. Each table's rows are counted and
its text hashed as it streams; nothing is stored. The rules are protocol/POSTGRESQL.md §6.

A table whose COPY text has the catalog's size and BLAKE3 is equal: a table restored by one COPY in
stream order (unless ``--split-tables-larger-than``: restore/postgresql.py), or a source not written
since the snapshot, has its rows in the stream's order. A table with the catalog's row count and
size but another BLAKE3 may hold the same rows in another physical order (VACUUM FULL, CLUSTER, an
UPDATE that changed nothing, a restore by several COPYs): for those tables only, a second pass
computes the multiset digest of the rows (core/rowset.py, salted with 32 random bytes drawn for
this run and shown in the report, so that no one can have chosen rows that collide) on both sides
at once, the database's by reading the table again in the same snapshot, the copy's by reading and
opening that table's stream from the store (read/reader.py, only those streams' chunks; each
stream's BLAKE3 is checked against the catalog as it ends).
Equal digests: the same rows, moved; the table counts as ``source_tables_reordered`` and is named
in the check's note. Unequal: ``differs``, with both digests. The multiset digest costs a BLAKE3
per row in the interpreter (about 1.5 million rows/s, where the plain BLAKE3 runs at GB/s), so
it is not computed for tables whose plain hash already matches, nor for those whose row count or
size differs (moved rows keep both).

Sequences: the copy's ``sequences.sql`` (read in the same second pass) holds each sequence's
value just after the snapshot. A sequence of the selection in one place only, or whose value in
the database is behind the copy's (the next value it would hand out is lower, or higher for a
descending sequence), differs; a value ahead of the copy's is the database having been used
since, counted as ``source_sequences_advanced``.

Differences: ``source-only`` (a table, sequence or large object the database has and the copy
does not), ``copy-only`` (the reverse), ``differs`` (row count, size, rows, value or content). A
database that cannot be reached is ``unreadable``: nothing is then proven either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import blake3

from transferd.core.catalog_walk import End, show
from transferd.core.rowset import SALT_SIZE, RowMultiset
from transferd.errors import ObjectNotFoundError, StoreError, TransferdError
from transferd.read.changes import ChangeReader, change_refs
from transferd.read.reader import JobReader, Piece
from transferd.report.model import Failure, Report
from transferd.sources.postgres import conninfo, listing
from transferd.sources.postgres.copy import CopyReader
from transferd.sources.postgres.listing import Selection, SequenceRef, Table
from transferd.sources.postgres.snapshot import SnapshotHolder, locks_released, quote_literal
from transferd.verify.deep import CatalogEntry
from transferd.verify.pgchanges import Expected, Replay

HASH_INLINE = 1024 * 1024
"""Blocks up to this size are hashed on the event loop; larger ones on a thread."""
ROWS_INLINE = 64 * 1024
"""Blocks up to this size get their row hashes on the event loop (about 10 ms per MiB)."""
SEQUENCES = b"sequences.sql"
NAMED = 20
"""Tables named in the note on reordered tables; the count says how many there are in all."""

OpenCopy = Callable[[], JobReader]
"""A reader of the copy's version being compared (verify.py makes one: store, manifest, key)."""

_SETVAL = re.compile(
    r"^SELECT pg_catalog\.setval\(('(?:[^']|'')*'), (-?\d+), (true|false)\);$", re.M
)


@dataclass
class _Copied:
    path: str
    rows: int | None
    size: int | None
    blake3: str | None
    seen: bool = False


@dataclass
class _Moved:
    """A table whose rows may have moved: same count and size, another BLAKE3."""

    table: Table
    copied: _Copied
    raw_path: bytes
    rows: int
    size: int
    digest: str
    live: str | None = None
    copy: str | None = None


@dataclass
class _Followed:
    """A table the changes touch: compared with its rows as of the copy's newest change."""

    table: Table
    copied: _Copied
    expected: Expected
    rows: int
    live: str | None = None


@dataclass
class _SecondPass:
    moved: list[_Moved] = field(default_factory=list)
    followed: list[_Followed] = field(default_factory=list)
    sequences: bytes | None = None
    """The copy's sequences.sql, once read."""
    copy_error: Failure | None = None


class PgComparison:
    """The catalog's side, filled by ``add`` during the catalog walk; then ``compare``."""

    def __init__(self, spec: str, *, password_file: Path | None = None, jobs: int = 4) -> None:
        self.info = conninfo.parse(spec, password_file)
        self.description = self.info.description
        self.jobs = max(1, jobs)
        self.tables: dict[tuple[str, str], _Copied] = {}
        self.paths: dict[tuple[str, str], bytes] = {}
        self.large_objects: dict[int, _Copied] = {}
        self.has_sequences = False
        self.salt = os.urandom(SALT_SIZE)
        """Of the row multiset digests (POSTGRESQL.md 6.2): drawn now, after the rows were
        written, so no one could choose rows whose digests collide; in the report."""
        self._second = _SecondPass()
        self.followed: dict[tuple[str, str], Expected] = {}
        """A follow copy's tables that its changes touch (verify/pgchanges.py)."""
        self.cutover_sequences: bytes | None = None

    def close(self) -> None:
        pass

    def add(self, item: CatalogEntry) -> None:
        e = item.entry
        rows = (item.end or {}).get("rows")
        copied = _Copied(show(e.path), rows, item.size, item.blake3)
        if e.kind == "table":
            key = (str(e.record.get("schema")), str(e.record.get("name")))
            self.tables[key] = copied
            self.paths[key] = e.path
        elif e.path.startswith(b"large-objects/") and e.path[14:].isdigit():
            self.large_objects[int(e.path[14:])] = copied
        elif e.path == SEQUENCES:
            self.has_sequences = True

    async def compare(self, report: Report, workers: int, open_copy: OpenCopy) -> None:
        """Read the database in a new snapshot; report every difference with the copy."""
        source = report.source or {}
        if source.get("kind") != "postgresql":
            report.fail(Failure("differs", f"the copy is of a {source.get('kind')} source, "
                                "not of a PostgreSQL database"))  # fmt: skip
            return
        try:
            holder = await SnapshotHolder.open(self.info, None)
        except TransferdError as e:
            report.fail(Failure("unreadable", f"{self.description}: {e.message}"))
            return
        sequences: list[tuple[SequenceRef, int, bool, int]] | None = None
        try:
            await self._replay_changes(open_copy)
            selection = parse_selection(str(source.get("selection", "")))
            async with locks_released(holder.conn):
                tables = await listing.list_tables(holder.conn, selection)
            await self._tables(report, tables, holder.snapshot.id)
            if self.has_sequences:
                sequences = await _sequences(holder.conn, selection)
            await self._second_pass(open_copy, holder.snapshot.id)
            if self.cutover_sequences is not None:  # a follow copy: its values at the cut-over
                self._second.sequences = self.cutover_sequences
            if selection.with_large_objects:
                await self._large_objects(report, holder.conn)
        except (TransferdError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as e:
            message = e.message if isinstance(e, TransferdError) else str(e)
            report.fail(Failure("unreadable", f"{self.description}: {message}"))
        finally:
            await holder.close()
        self._judge_moved(report)
        self._judge_followed(report)
        if sequences is not None:
            self._check_sequences(report, sequences)
        for what, items in (("table", self.tables.values()),
                            ("large object", self.large_objects.values())):  # fmt: skip
            for c in items:
                if not c.seen:
                    report.fail(Failure("copy-only", f"{c.path}: the copy has this {what}, "
                                        "the database does not", path=c.path))  # fmt: skip
        snap = holder.snapshot
        note = (
            f"{report.counts.get('source_tables', 0):,} tables, "
            f"{report.counts.get('source_sequences', 0):,} sequences and "
            f"{report.counts.get('source_large_objects', 0):,} large objects of "
            f"{self.description} compared in snapshot {snap.id} of {snap.taken}"
        )
        reordered = [m.table.display for m in self._second.moved if m.live and m.live == m.copy]
        if reordered:
            names = ", ".join(reordered[:NAMED]) + (", …" if len(reordered) > NAMED else "")
            note += (f"; {len(reordered):,} with the same rows as the copy in another physical "
                     f"order (equal row multiset digests, salt {self.salt.hex()}): "
                     f"{names}")  # fmt: skip
        advanced = report.counts.get("source_sequences_advanced", 0)
        if advanced:
            note += f"; {advanced:,} sequences ahead of the copy's values (used since)"
        report.notes["matches-source"] = note

    # --- tables: the first pass ------------------------------------------------------------

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
        key = (t.schema, t.name)
        copied = self.tables.get(key)
        name = f"table {t.display}"
        if copied is None:
            report.fail(Failure("source-only", f"{name}: the database has this table, the copy "
                                "does not", actual={"rows": rows, "size": size}))  # fmt: skip
            return
        copied.seen = True
        if key in self.followed:  # the changes touch it: compared by its rows (second pass)
            self._second.followed.append(_Followed(t, copied, self.followed[key], rows))
            return
        if digest == copied.blake3 and size == copied.size:
            return
        if rows == copied.rows and size == copied.size:
            self._second.moved.append(_Moved(t, copied, self.paths[key], rows, size, digest))
            return
        if rows != copied.rows:
            problem = f"has {rows:,} rows in the database, {copied.rows:,} in the copy"
        else:
            problem = (f"has the copy's {_rows(rows)} but other content ({size:,} bytes of COPY "
                       f"text in the database, {copied.size:,} in the copy)")  # fmt: skip
        _differs(
            report, copied, f"{name} {problem}", {"rows": rows, "size": size, "blake3": digest}
        )

    # --- the second pass: row multisets and sequences.sql ----------------------------------

    async def _second_pass(self, open_copy: OpenCopy, snapshot: str) -> None:
        """Both sides of each moved table's multiset digest, and the copy's sequences.sql."""
        second = self._second
        if not second.moved and not second.followed and not self.has_sequences:
            return
        live = asyncio.create_task(self._live_multisets(snapshot))
        try:
            await self._read_copy(open_copy)
            await live
        finally:
            live.cancel()
            await asyncio.gather(live, return_exceptions=True)

    async def _live_multisets(self, snapshot: str) -> None:
        moved, followed = self._second.moved, self._second.followed
        if not moved and not followed:
            return
        tables = [m.table for m in moved] + [f.table for f in followed]
        reader = CopyReader(self.info, snapshot, tables, workers=self.jobs)
        reader.start()
        try:
            items: list[_Moved | _Followed] = [*moved, *followed]
            for item in items:
                rows = RowMultiset(self.salt)
                async for block in reader.stream(item.table):
                    await _add_rows(rows, block)
                item.live = rows.hexdigest()
        finally:
            await reader.close()

    async def _read_copy(self, open_copy: OpenCopy) -> None:
        second = self._second
        multisets = {m.raw_path: (m, RowMultiset(self.salt)) for m in second.moved}
        wanted = {*multisets, SEQUENCES} if self.has_sequences else set(multisets)
        pieces: list[bytes] = []
        left = len(wanted)
        reader = open_copy()
        try:
            items = reader.items(lambda entry: entry.path in wanted)
            async with contextlib.aclosing(items):
                async for item in items:
                    if isinstance(item, Piece):
                        if item.entry.path == SEQUENCES:
                            pieces.append(item.data)
                        else:
                            await _add_rows(multisets[item.entry.path][1], item.data)
                    elif isinstance(item, End):
                        if item.entry.path == SEQUENCES:
                            second.sequences = b"".join(pieces)
                        else:
                            m, rows = multisets[item.entry.path]
                            m.copy = rows.hexdigest()
                        left -= 1
                        if not left:
                            break
        except TransferdError as e:
            unreadable = isinstance(e, StoreError) and not isinstance(e, ObjectNotFoundError)
            second.copy_error = Failure(
                "unreadable" if unreadable else "stream",
                f"the copy's streams could not be read to compare their rows: {e.message}",
            )
        finally:
            await reader.close()

    def _judge_moved(self, report: Report) -> None:
        second = self._second
        if second.copy_error is not None:
            report.fail(second.copy_error)
        for m in second.moved:
            name = f"table {m.table.display}"
            salt = self.salt.hex()
            live = {"rows": m.rows, "size": m.size, "blake3": m.digest, "rows_multiset": m.live,
                    "rows_multiset_salt": salt}  # fmt: skip
            copy = {"rows": m.copied.rows, "size": m.copied.size, "blake3": m.copied.blake3,
                    "rows_multiset": m.copy, "rows_multiset_salt": salt}  # fmt: skip
            same = f"{name} has the copy's {_rows(m.rows)} and size but"
            if m.live is None or m.copy is None:
                why = "another BLAKE3, and its rows could not be compared"
                _differs(report, m.copied, f"{same} {why}", live, copy)
            elif m.live != m.copy:
                why = "not the same rows (their multiset digests differ)"
                _differs(report, m.copied, f"{same} {why}", live, copy)
            else:
                report.count("source_tables_reordered")

    # --- a follow copy: the tables its changes touch -----------------------------------------

    async def _replay_changes(self, open_copy: OpenCopy) -> None:
        """For a follow copy: each touched table's rows as of the newest change (rows and row
        multiset digest), and the sequences at the cut-over (verify/pgchanges.py)."""
        first = open_copy()
        try:
            signed = first.manifest
            if signed.body.changes is None:
                return
            refs = await change_refs(first.store, signed)
            changes = ChangeReader(first.store, signed, first.key)
            replay = Replay(changes, refs, self.salt)
            try:
                self.followed = await replay.expected(lambda wanted, feed: self._snapshot_rows(
                    open_copy, wanted, feed))  # fmt: skip
            finally:
                replay.close()
            if refs and refs[-1].cutover:
                last = await changes.segment(refs[-1])
                assert last.cutover is not None  # noqa: S101 - flagged: checked by open
                self.cutover_sequences = await changes.text(last.cutover)
        finally:
            await first.close()

    async def _snapshot_rows(
        self,
        open_copy: OpenCopy,
        wanted: set[tuple[str, str]],
        feed: Callable[[tuple[str, str], bytes], None],
    ) -> None:
        paths = {self.paths[t]: t for t in wanted if t in self.paths}
        if not paths:
            return
        reader = open_copy()
        tails: dict[bytes, bytes] = {}
        try:
            items = reader.items(lambda entry: entry.path in paths)
            async with contextlib.aclosing(items):
                async for item in items:
                    if isinstance(item, Piece):
                        path = item.entry.path
                        data = tails.pop(path, b"") + item.data
                        cut = data.rfind(b"\n") + 1
                        if cut:
                            feed(paths[path], data[:cut])
                        if cut < len(data):
                            tails[path] = data[cut:]
        finally:
            await reader.close()

    def _judge_followed(self, report: Report) -> None:
        for f in self._second.followed:
            name = f"table {f.table.display}"
            salt = self.salt.hex()
            expected = {"rows": f.expected.rows, "rows_multiset": f.expected.digest,
                        "rows_multiset_salt": salt}  # fmt: skip
            actual = {"rows": f.rows, "rows_multiset": f.live, "rows_multiset_salt": salt}
            if f.rows != f.expected.rows:
                _differs(report, f.copied, f"{name} has {f.rows:,} rows in the database, "
                         f"{f.expected.rows:,} in the copy as of its newest change",
                         actual, expected)  # fmt: skip
            elif f.live != f.expected.digest:
                _differs(report, f.copied, f"{name} has the copy's {_rows(f.rows)} as of its "
                         "newest change, but not the same rows (their multiset digests differ)",
                         actual, expected)  # fmt: skip
            else:
                report.count("source_tables_followed")

    # --- sequences -------------------------------------------------------------------------

    def _check_sequences(
        self, report: Report, live: list[tuple[SequenceRef, int, bool, int]]
    ) -> None:
        if self._second.sequences is None:
            return  # the copy could not be read: reported
        copied = parse_sequences(self._second.sequences)
        for seq, last, called, increment in live:
            literal = quote_literal(seq.qualified)
            name = f"sequence {seq.schema}.{seq.name}"
            report.count("source_sequences")
            state = {"last_value": last, "is_called": called}
            if literal not in copied:
                report.fail(Failure("source-only", f"{name}: the database has this sequence, "
                                    "the copy does not", actual=state))  # fmt: skip
                continue
            c_last, c_called = copied.pop(literal)
            c_state = {"last_value": c_last, "is_called": c_called}
            ahead = _next(last, called, increment) - _next(c_last, c_called, increment)
            if increment < 0:
                ahead = -ahead
            if ahead < 0:
                report.fail(Failure(
                    "differs", f"{name} is behind the copy: the next value it hands out is "
                    f"{_next(last, called, increment)} in the database, "
                    f"{_next(c_last, c_called, increment)} after restoring the copy",
                    path=show(SEQUENCES), expected=c_state, actual=state,
                ))  # fmt: skip
            elif ahead > 0:
                report.count("source_sequences_advanced")
        for literal in copied:
            report.fail(Failure("copy-only", f"sequence {_unquote(literal)}: the copy has this "
                                "sequence, the database does not",
                                path=show(SEQUENCES)))  # fmt: skip

    # --- large objects ---------------------------------------------------------------------

    async def _large_objects(self, report: Report, conn: asyncpg.Connection) -> None:
        async for oids in listing.large_object_oids(conn):
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


async def _add_rows(rows: RowMultiset, block: bytes) -> None:
    if len(block) <= ROWS_INLINE:
        rows.update(block)
    else:
        await asyncio.to_thread(rows.update, block)


def _differs(
    report: Report, copied: _Copied, message: str, actual: dict[str, Any],
    expected: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    expected = expected or {"rows": copied.rows, "size": copied.size, "blake3": copied.blake3}
    report.fail(Failure("differs", message, path=copied.path, expected=expected, actual=actual))


async def _sequences(
    conn: asyncpg.Connection, selection: Selection
) -> list[tuple[SequenceRef, int, bool, int]]:
    """(sequence, last_value, is_called, increment) of each sequence of the selection, now."""
    async with locks_released(conn):
        seqs = await listing.list_sequences(conn, selection)
        values = await listing.sequence_values(conn, seqs)
        rows = await conn.fetch(
            "SELECT seqrelid, seqincrement FROM pg_sequence WHERE seqrelid = ANY($1::oid[])",
            [s.oid for s in seqs],
        )
    increments = {int(r["seqrelid"]): int(r["seqincrement"]) for r in rows}
    return [(s, last, called, increments.get(s.oid, 1)) for s, last, called in values]


def _next(last: int, called: bool, increment: int) -> int:
    """The value ``nextval`` would hand out (ignoring the bounds and CYCLE)."""
    return last + increment if called else last


def parse_sequences(text: bytes) -> dict[str, tuple[int, bool]]:
    """{quoted name: (last_value, is_called)} of a copy's sequences.sql (POSTGRESQL.md §3)."""
    out: dict[str, tuple[int, bool]] = {}
    for match in _SETVAL.finditer(text.decode("utf-8", "replace")):
        out[match[1]] = (int(match[2]), match[3] == "true")
    return out


def _unquote(literal: str) -> str:
    """``public.s`` of ``'"public"."s"'`` (a literal of quoted identifiers, as pg_dump writes)."""
    names = re.fullmatch(r'"((?:[^"]|"")*)"\."((?:[^"]|"")*)"', literal[1:-1].replace("''", "'"))
    if names is None:
        return literal
    return ".".join(n.replace('""', '"') for n in names.groups())


def _rows(n: int) -> str:
    return f"{n:,} row{'s' if n != 1 else ''}"


def parse_selection(text: str) -> Selection:
    """The selection a copy was made with, from its catalog's ``selection`` (pg_dump's options)."""
    fields: dict[str, list[str]] = {}
    flags: set[str] = set()
    for arg in shlex.split(text):
        flag, _, value = arg.partition("=")
        name = {"--schema": "include_schema", "--exclude-schema": "exclude_schema",
                "--table": "include_table", "--exclude-table": "exclude_table",
                "--exclude-table-data": "exclude_table_data"}.get(flag)  # fmt: skip
        if name is not None:
            fields.setdefault(name, []).append(value)
        else:
            flags.add(flag)
    return Selection(
        include_schema=tuple(fields.get("include_schema", ())),
        exclude_schema=tuple(fields.get("exclude_schema", ())),
        include_table=tuple(fields.get("include_table", ())),
        exclude_table=tuple(fields.get("exclude_table", ())),
        exclude_table_data=tuple(fields.get("exclude_table_data", ())),
        large_objects=True if "--blobs" in flags else False if "--no-blobs" in flags else None,
        no_owner="--no-owner" in flags,
        no_privileges="--no-privileges" in flags,
    )
