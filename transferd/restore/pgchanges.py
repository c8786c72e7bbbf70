"""Apply a follow copy's change segments to the database restored from its snapshot.

protocol/POSTGRESQL.md §8 says what each change becomes; in short, every segment in list order,
each in one target transaction that also records the end LSN of the last source transaction
applied (``transferd.applied``): a segment applied again, by a restore resumed after a kill,
skips every transaction ending at or before it, so applying is idempotent. Each UPDATE and
DELETE must touch exactly one row, else the target is not the copy's state and the restore stops
("target diverged"), with one exception: a table a later TRUNCATE empties (a table truncated
while the snapshot was read was copied as far as the snapshot still saw it; what happened to it
before the TRUNCATE no longer matters).

The session runs with ``session_replication_role = replica``: the source's triggers and foreign
keys already made the changes consistent, and must not act a second time on the target (which
takes a superuser in PostgreSQL 15). Statements are prepared once per table, kind and set of
columns, values passed as text and cast by the target's own column types (``$1::text::type``):
the source's type oids mean nothing on the target.

Sequences come last, from the cut-over segment; the bookkeeping table is then dropped, so that
``verify --against`` sees the source's schema and nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from transferd.core.changes import ChangeRef, ChangeSegment
from transferd.core.pgoutput import lsn_text, parse_lsn
from transferd.errors import ConfigError, IntegrityError, TargetError
from transferd.read.changes import UNCHANGED, Begin, Change, ChangeReader, Commit, Relation
from transferd.sources.postgres.snapshot import quote_ident

log = logging.getLogger(__name__)

APPLIED = "transferd.applied"
_READ_APPLIED = "SELECT end_lsn::text FROM transferd.applied WHERE job = $1"
_WRITE_APPLIED = (
    "INSERT INTO transferd.applied VALUES ($1, $2::text::pg_lsn) ON CONFLICT (job) DO "
    "UPDATE SET end_lsn = greatest(applied.end_lsn, excluded.end_lsn)"
)


@dataclass
class ChangeProgress:
    segments: int = 0
    transactions: int = 0
    changes: int = 0
    skipped: int = 0
    """Source transactions already applied (a restore resumed)."""
    applied_lsn: int = 0
    started: float = field(default_factory=time.monotonic)


class Applier:
    def __init__(
        self,
        conn: asyncpg.Connection,
        reader: ChangeReader,
        job: str,
        progress: ChangeProgress,
        until_lsn: int | None = None,
    ) -> None:
        self.conn = conn
        self.reader = reader
        self.job = job
        self.progress = progress
        self.until = until_lsn
        self._statements: dict[tuple[object, ...], asyncpg.prepared_stmt.PreparedStatement] = {}
        self._types: dict[tuple[str, str], dict[str, str]] = {}
        self._truncated_until: dict[tuple[str, str], int] = {}
        self.stopped = False
        """``until`` reached inside a segment: no later one is applied."""

    async def setup(self) -> int:
        try:
            await self.conn.execute("SET session_replication_role = replica")
        except asyncpg.InsufficientPrivilegeError:
            raise ConfigError(
                "applying a follow copy's changes needs a superuser on the target (PostgreSQL "
                "15 lets only a superuser set session_replication_role = replica)",
                hint="restore with a superuser role in --to",
            ) from None
        await self.conn.execute(
            "CREATE SCHEMA IF NOT EXISTS transferd; CREATE TABLE IF NOT EXISTS "
            f"{APPLIED} (job text PRIMARY KEY, end_lsn pg_lsn NOT NULL)"
        )
        done = await self.conn.fetchval(_READ_APPLIED, self.job)
        return 0 if done is None else parse_lsn(str(done))

    async def run(self, refs: list[ChangeRef], on_sequences: Callable[[bytes], object]) -> None:
        await self.reader.check_follows_snapshot(refs)  # before the target is touched
        applied = await self.setup()
        self.progress.applied_lsn = applied
        segments = []
        for ref in refs:
            if self.until is not None and ref.start_lsn >= self.until:
                break
            segments.append(ref)
        for ref in segments:  # which tables a later TRUNCATE empties (from the headers)
            segment = await self.reader.segment(ref)
            for schema, name, _, _, _, truncates in segment.tables:
                if truncates:
                    self._truncated_until[(schema, name)] = ref.end_lsn
        cutover: bytes | None = None
        for ref in segments:
            segment = await self.reader.segment(ref)
            if ref.end_lsn > applied:
                applied = await self._segment(ref, segment, applied)
            if self.stopped:
                break
            if segment.cutover is not None and (self.until is None or ref.end_lsn <= self.until):
                cutover = await self.reader.text(segment.cutover)
            self.progress.segments += 1
        if cutover is not None:
            on_sequences(cutover)

    async def _segment(self, ref: ChangeRef, segment: ChangeSegment, applied: int) -> int:
        """Apply one segment in one target transaction; the end LSN applied after it. With
        ``until``, each source transaction is a savepoint: the one ending past it is undone."""
        last = applied
        skipping = False
        until = self.until
        async with self.conn.transaction():
            events = self.reader.events(ref, segment)
            async with contextlib.aclosing(events):  # type: ignore[type-var]
                async for event in events:
                    if isinstance(event, Begin):
                        skipping = event.final_lsn < applied
                        if skipping:
                            self.progress.skipped += 1
                        elif until is not None:
                            if event.final_lsn >= until:
                                self.stopped = True
                                break
                            await self.conn.execute("SAVEPOINT transferd_txn")
                    elif isinstance(event, Commit):
                        if skipping:
                            continue
                        if until is not None:
                            if event.end_lsn > until:
                                await self.conn.execute("ROLLBACK TO SAVEPOINT transferd_txn")
                                self.stopped = True
                                break
                            await self.conn.execute("RELEASE SAVEPOINT transferd_txn")
                        last = event.end_lsn
                        self.progress.transactions += 1
                    elif not skipping:
                        await self._apply(event, ref)
            if last > applied:
                await self.conn.execute(_WRITE_APPLIED, self.job, lsn_text(last))
        self.progress.applied_lsn = last
        return last

    async def _apply(self, c: Change, ref: ChangeRef) -> None:
        self.progress.changes += 1
        if c.op == "T":
            names = ", ".join(_qualified(r) for r in c.truncated)
            extra = (" RESTART IDENTITY" if c.options & 2 else "") + (
                " CASCADE" if c.options & 1 else ""
            )
            await self.conn.execute(f"TRUNCATE {names}{extra}")
            return
        rel = c.relation
        assert rel is not None  # noqa: S101 - only T has none
        types = await self._column_types(rel)
        if c.op == "I":
            assert c.new is not None  # noqa: S101
            stmt = await self._prepare(("I", rel.relid, rel.columns), lambda: _insert(rel, types))
            await stmt.fetch(*c.new)
            return
        where_cols, where_vals = self._where(c, rel)
        full = rel.identity == "f"
        if c.op == "U":
            assert c.new is not None  # noqa: S101
            sets = [i for i, v in enumerate(c.new) if v is not UNCHANGED]
            key = ("U", rel.relid, rel.columns, tuple(sets), where_cols, full)
            stmt = await self._prepare(key, lambda: _update(rel, types, sets, where_cols, full))
            await stmt.fetch(*[c.new[i] for i in sets], *where_vals)
        else:
            key = ("D", rel.relid, rel.columns, (), where_cols, full)
            stmt = await self._prepare(key, lambda: _delete(rel, types, where_cols, full))
            await stmt.fetch(*where_vals)
        status = stmt.get_statusmsg() or ""
        if not status.endswith(" 1"):
            table = (rel.schema, rel.name)
            if ref.end_lsn <= self._truncated_until.get(table, -1):
                return  # a row of a table the changes truncate later: no longer matters
            raise IntegrityError(
                f"target diverged: an {'UPDATE' if c.op == 'U' else 'DELETE'} of "
                f"{rel.schema}.{rel.name} in the changes up to {lsn_text(ref.end_lsn)} found "
                f"{status.rsplit(' ', 1)[-1]} rows, not 1",
                hint="restore into an empty database; a database changed since its restore "
                "cannot take the copy's changes",
            )

    def _where(self, c: Change, rel: Relation) -> tuple[tuple[int, ...], list[object]]:
        if rel.identity == "f":
            old = c.old or c.new
            assert old is not None  # noqa: S101
            cols = tuple(i for i, v in enumerate(old) if v is not UNCHANGED)
            return cols, [old[i] for i in cols]
        row = c.old if c.old is not None else c.new
        assert row is not None  # noqa: S101
        if not rel.key:
            raise TargetError(f"table {rel.schema}.{rel.name} has no key in the changes")
        return rel.key, [row[i] for i in rel.key]

    async def _column_types(self, rel: Relation) -> dict[str, str]:
        key = (rel.schema, rel.name)
        if key not in self._types:
            rows = await self.conn.fetch(
                "SELECT attname, format_type(atttypid, atttypmod) AS t FROM pg_attribute "
                "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
                _qualified(rel),
            )
            self._types[key] = {r["attname"]: r["t"] for r in rows}
        return self._types[key]

    async def _prepare(
        self, key: tuple[object, ...], sql: Callable[[], str]
    ) -> asyncpg.prepared_stmt.PreparedStatement:
        stmt = self._statements.get(key)
        if stmt is None:
            stmt = self._statements[key] = await self.conn.prepare(sql())
        return stmt


async def finish(conn: asyncpg.Connection) -> None:
    """After the last segment: the bookkeeping goes, so the target holds the source's schema."""
    await conn.execute("DROP SCHEMA IF EXISTS transferd CASCADE")


def _qualified(rel: Relation) -> str:
    return f"{quote_ident(rel.schema)}.{quote_ident(rel.name)}"


def _cast(n: int, types: dict[str, str], column: str) -> str:
    return f"${n}::text::{types[column]}"


def _insert(rel: Relation, types: dict[str, str]) -> str:
    cols = ", ".join(quote_ident(c) for c in rel.columns)
    vals = ", ".join(_cast(i + 1, types, c) for i, c in enumerate(rel.columns))
    return f"INSERT INTO {_qualified(rel)} ({cols}) VALUES ({vals})"  # noqa: S608


def _match(rel: Relation, types: dict[str, str], cols: tuple[int, ...], first: int,
           full: bool) -> str:  # fmt: skip
    terms = []
    for n, i in enumerate(cols, first):
        col = quote_ident(rel.columns[i])
        if full:  # no key: compare each column's text, NULL equal to NULL (json has no =)
            terms.append(f"{col}::text IS NOT DISTINCT FROM ${n}::text")
        else:
            terms.append(f"{col} = {_cast(n, types, rel.columns[i])}")
    where = " AND ".join(terms) or "true"
    if full:
        return f"ctid = (SELECT ctid FROM {_qualified(rel)} WHERE {where} LIMIT 1)"  # noqa: S608
    return where


def _update(rel: Relation, types: dict[str, str], sets: list[int], where: tuple[int, ...],
            full: bool) -> str:  # fmt: skip
    assign = ", ".join(f"{quote_ident(rel.columns[i])} = {_cast(n, types, rel.columns[i])}"
                       for n, i in enumerate(sets, 1))  # fmt: skip
    return f"UPDATE {_qualified(rel)} SET {assign} WHERE {_match(rel, types, where, len(sets) + 1, full)}"  # noqa: S608, E501


def _delete(rel: Relation, types: dict[str, str], where: tuple[int, ...], full: bool) -> str:
    return f"DELETE FROM {_qualified(rel)} WHERE {_match(rel, types, where, 1, full)}"  # noqa: S608
