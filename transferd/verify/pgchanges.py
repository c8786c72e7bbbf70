"""A follow copy's tables as of its newest change, for ``verify --against``: row counts and row
multiset digests computed from the snapshot's rows and the changes, without a database.

protocol/POSTGRESQL.md §8 ("Comparing with a database"). For each table the changes touch, the
copy's rows are the snapshot's rows with every change applied. Rather than applying them to a
copy of the table (the table may be terabytes; the changes are usually a sliver of it), only the
rows the changes touch are kept, in a throw-away SQLite database:

1. the changes are read once to collect the *touched* rows: for a table with a key, every key an
   UPDATE or DELETE names (the old key, or the new row's); for ``REPLICA IDENTITY FULL``, every
   whole old row;
2. the snapshot's stream of each touched table is read: a row not touched goes straight into the
   table's row multiset digest (core/rowset.py), a touched one into the SQLite table;
3. the changes are read again and applied to the SQLite rows (an INSERT adds, an UPDATE replaces,
   filling in TOASTed values it did not send from the row it replaces, a DELETE removes);
4. what remains in SQLite is added to the digest.

A table a TRUNCATE empties is not read from the snapshot at all: its rows are those the changes
insert after the last TRUNCATE. Addition commutes, so the digest is the one of the table's rows
in any order: the database side reads its table and computes the same digest (same salt). Rows
are compared in ``copy-text``: each value pgoutput sends is the text COPY writes, before COPY's
escaping, which ``copy_row`` applies.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from transferd.core.changes import ChangeRef
from transferd.core.rowset import RowMultiset
from transferd.errors import IntegrityError
from transferd.read.changes import UNCHANGED, Change, ChangeReader, Relation, Value

TableKey = tuple[str, str]
ReadStream = Callable[[set[TableKey], Callable[[TableKey, bytes], None]], Awaitable[None]]
"""Feeds the snapshot's rows of the given tables, block by block, to the callback."""

_UPSERT = "INSERT INTO rows VALUES (?, ?, ?, 1) ON CONFLICT (t, k) DO UPDATE SET n = n + 1"
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
                          "\f": "\\f", "\v": "\\v"})  # fmt: skip


def copy_value(v: Value) -> str:
    if v is None:
        return "\\N"
    if v is UNCHANGED:
        raise ValueError("an unchanged TOASTed value has no text")
    assert isinstance(v, str)  # noqa: S101
    return v.translate(_ESCAPES)


def copy_row(values: tuple[Value, ...]) -> str:
    """The ``copy-text`` line (without its line feed) of a row pgoutput sent."""
    return "\t".join(copy_value(v) for v in values)


@dataclass
class Expected:
    rows: int
    digest: str


@dataclass
class _Table:
    key: tuple[int, ...] | None = None
    """Key positions; None: REPLICA IDENTITY FULL (rows are their own key, with a count)."""
    truncated: bool = False
    rest: RowMultiset | None = None
    rest_rows: int = 0
    ids: dict[str, int] = field(default_factory=dict)


class Replay:
    def __init__(self, reader: ChangeReader, refs: list[ChangeRef], salt: bytes) -> None:
        self.reader = reader
        self.refs = refs
        self.salt = salt
        self.tables: dict[TableKey, _Table] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="transferd-verify-changes-")
        self.db = sqlite3.connect(Path(self._tmp.name) / "rows.sqlite")
        self.db.executescript(
            """PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
            CREATE TABLE touched (t TEXT NOT NULL, k TEXT NOT NULL, PRIMARY KEY (t, k))
                WITHOUT ROWID;
            CREATE TABLE rows (t TEXT NOT NULL, k TEXT NOT NULL, row TEXT NOT NULL,
                n INTEGER NOT NULL, PRIMARY KEY (t, k)) WITHOUT ROWID;"""
        )

    def close(self) -> None:
        self.db.close()
        self._tmp.cleanup()

    async def expected(self, read_snapshot: ReadStream) -> dict[TableKey, Expected]:
        await self._collect()
        wanted = {t for t, s in self.tables.items() if not s.truncated}
        for t in wanted:
            self.tables[t].rest = RowMultiset(self.salt)
        await read_snapshot(wanted, self._snapshot_rows)
        await self._apply()
        return self._digests()

    # --- 1: what the changes touch ------------------------------------------------------------

    async def _collect(self) -> None:
        await self.reader.check_follows_snapshot(self.refs)
        for ref in self.refs:
            segment = await self.reader.segment(ref)
            for schema, name, _, _, _, truncates in segment.tables:
                self.tables.setdefault((schema, name), _Table()).truncated |= bool(truncates)
            async for event in self.reader.events(ref, segment):
                if isinstance(event, Change) and event.relation is not None:
                    self._touch(event)

    def _touch(self, c: Change) -> None:
        rel = c.relation
        assert rel is not None  # noqa: S101
        table = self._table(rel)
        if c.op == "I":
            return
        key = self._key(table, rel, c.old if c.old is not None else c.new)
        self.db.execute("INSERT OR IGNORE INTO touched VALUES (?, ?)", (_tname(rel), key))

    def _table(self, rel: Relation) -> _Table:
        table = self.tables.setdefault((rel.schema, rel.name), _Table())
        table.key = rel.key if rel.identity != "f" else None
        return table

    @staticmethod
    def _key(table: _Table, rel: Relation, values: tuple[Value, ...] | None) -> str:
        assert values is not None  # noqa: S101
        if table.key is None:
            return copy_row(values)
        return "\t".join(copy_value(values[i]) for i in table.key)

    # --- 2: the snapshot's rows ---------------------------------------------------------------

    def _snapshot_rows(self, t: TableKey, block: bytes) -> None:
        """Whole lines only (the caller cuts blocks at line feeds)."""
        table = self.tables[t]
        assert table.rest is not None  # noqa: S101
        name = _tn(*t)
        rest: list[bytes] = []
        for line in block.split(b"\n")[:-1]:
            text = line.decode("utf-8")
            fields = text.split("\t")
            key = text if table.key is None else "\t".join(fields[i] for i in table.key)
            hit = self.db.execute("SELECT 1 FROM touched WHERE t=? AND k=?", (name, key))
            if hit.fetchone() is None:
                rest.append(line)
            else:
                self.db.execute(_UPSERT, (name, key, text))
        if rest:
            table.rest.update(b"\n".join(rest) + b"\n")
            table.rest_rows += len(rest)

    # --- 3: the changes applied ---------------------------------------------------------------

    async def _apply(self) -> None:
        last_truncate: dict[TableKey, int] = {}
        for n, ref in enumerate(self.refs):
            segment = await self.reader.segment(ref)
            for schema, name, _, _, _, truncates in segment.tables:
                if truncates:
                    last_truncate[(schema, name)] = n
        for n, ref in enumerate(self.refs):
            segment = await self.reader.segment(ref)

            def before_truncate(t: TableKey, n: int = n) -> bool:
                return n <= last_truncate.get(t, -1)

            async for event in self.reader.events(ref, segment):
                if isinstance(event, Change):
                    self._change(event, before_truncate)

    def _change(self, c: Change, before_truncate: Callable[[TableKey], bool]) -> None:
        if c.op == "T":
            for gone in c.truncated:
                self.db.execute("DELETE FROM rows WHERE t=?", (_tname(gone),))
                emptied = self.tables.setdefault((gone.schema, gone.name), _Table())
                emptied.rest, emptied.rest_rows = None, 0
            return
        rel = c.relation
        assert rel is not None  # noqa: S101
        table = self._table(rel)
        name = _tname(rel)
        old: str | None = None
        if c.op in "UD":
            key = self._key(table, rel, c.old if c.old is not None else c.new)
            row = self.db.execute("SELECT row, n FROM rows WHERE t=? AND k=?", (name, key))
            found = row.fetchone()
            if found is None:
                if before_truncate((rel.schema, rel.name)):
                    found = None  # a row the snapshot no longer held; a TRUNCATE follows
                else:
                    raise IntegrityError(
                        f"the changes of {rel.schema}.{rel.name} name a row the copy does not "
                        "hold: the change segments do not follow the snapshot"
                    )
            else:
                old = str(found[0])
                if found[1] > 1:
                    self.db.execute("UPDATE rows SET n = n - 1 WHERE t=? AND k=?", (name, key))
                else:
                    self.db.execute("DELETE FROM rows WHERE t=? AND k=?", (name, key))
        if c.op in "IU":
            assert c.new is not None  # noqa: S101
            values = c.new
            if any(v is UNCHANGED for v in values):
                if old is None:
                    raise IntegrityError(f"an UPDATE of {rel.schema}.{rel.name} leaves a value "
                                         "unsent for a row the copy does not hold")  # fmt: skip
                prior = old.split("\t")
                text = "\t".join(prior[i] if v is UNCHANGED else copy_value(v)
                                 for i, v in enumerate(values))  # fmt: skip
            else:
                text = copy_row(values)
            key = text if table.key is None else "\t".join(text.split("\t")[i] for i in table.key)
            self.db.execute(_UPSERT, (name, key, text))

    # --- 4: the digests -----------------------------------------------------------------------

    def _digests(self) -> dict[TableKey, Expected]:
        out: dict[TableKey, Expected] = {}
        for t, table in self.tables.items():
            rows = table.rest or RowMultiset(self.salt)
            count = table.rest_rows
            cursor = self.db.execute("SELECT row, n FROM rows WHERE t=?", (_tn(*t),))
            while batch := cursor.fetchmany(1000):
                data = b"".join((r.encode("utf-8") + b"\n") * n for r, n in batch)
                rows.update(data)
                count += sum(n for _, n in batch)
            out[t] = Expected(count, rows.hexdigest())
        return out


def _tname(rel: Relation) -> str:
    return _tn(rel.schema, rel.name)


def _tn(schema: str, name: str) -> str:
    return f"{schema}\0{name}"  # NUL is in no identifier: (a.b, c) and (a, b.c) stay two
