"""The sender's pass over the replication stream: what goes into the change segments, and when a
transaction ends.

Each message from the slot goes through ``ChangeTracker.feed``, which returns what to do with it:
bytes to append to the current segment's ``pgoutput-1`` stream (framed), the end of a transaction
(the follow may seal a segment there), or the cut-over marker. On the way it:

- drops transactions the host already holds: after a restart PostgreSQL 15 sends again
  transactions it was told were stored (a clean shutdown does not always save the slot's
  confirmed position), so every transaction whose commit record starts before ``stored`` (the
  end of the last one published) is skipped whole;
- keeps the newest Relation message of each table and writes it into the stream before the
  table's first change in each segment, so that every segment decodes on its own;
- refuses a table whose columns are not those the snapshot copied (DDL is not carried: applying
  later changes to the copied columns would be wrong), and leaves out tables the publication has
  but the copy does not (an operator's publication may name more);
- holds back a Begin until the transaction's first change, so that a transaction that changes
  nothing copied leaves nothing in the stream;
- counts, per segment, transactions and each table's inserts, updates, deletes and truncates
  (the segment's header), and remembers every table a TRUNCATE emptied (a table rewritten after
  the snapshot is accepted only when its TRUNCATE is in the changes).

Only the skeleton of each message is read (core/pgoutput.py says why).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from transferd.core import pgoutput
from transferd.core.pgoutput import CHANGE_KINDS, Relation
from transferd.errors import SourceError
from transferd.sources.postgres.listing import Table
from transferd.sources.postgres.slot import MARKER_PREFIX, Message, marker_of


@dataclass(frozen=True)
class Committed:
    end_lsn: int
    commit_time_us: int
    kept: bool
    """False when the transaction changed nothing copied and left nothing in the stream."""


@dataclass(frozen=True)
class Marker:
    lsn: int


Event = Committed | Marker


@dataclass
class SegmentCounts:
    transactions: int = 0
    size: int = 0
    counts: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    emitted: dict[int, bytes] = field(default_factory=dict)
    """Relation messages written into this segment's stream, by relation id."""


class ChangeTracker:
    def __init__(self, tables: list[Table], stored: int) -> None:
        self.tables = {(t.schema, t.name): t for t in tables}
        self.stored = stored
        """The end LSN of the last transaction the host holds under a published manifest."""
        self.relations: dict[int, tuple[Relation, bytes] | None] = {}
        """Relation id -> (its newest Relation message, the raw message); None: not copied."""
        self.truncated: set[int] = set()
        """Relation ids (table oids) a TRUNCATE in the changes emptied."""
        self.segment = SegmentCounts()
        self._begin: bytes | None = None
        self._skipping = False
        self._in_transaction = False
        self._written = False

    def new_segment(self) -> None:
        self.segment = SegmentCounts()

    def feed(self, message: Message, out: list[bytes]) -> Event | None:
        """Append to ``out`` the framed records ``message`` adds to the stream; the event it
        ends with, if any."""
        data = message.payload
        kind = data[:1]
        if kind == b"B":
            begin = pgoutput.read_begin(data)
            self._in_transaction = True
            self._skipping = begin.final_lsn < self.stored
            self._begin, self._written = data, False
            return None
        if kind == b"C":
            commit = pgoutput.read_commit(data)
            kept = self._written and not self._skipping
            if kept:
                self._write(data, out)
                self.segment.transactions += 1
            self._in_transaction = False
            self._begin = None
            if self._skipping:
                return None
            return Committed(commit.end_lsn, commit.commit_time_us, kept)
        if kind == b"M":
            if marker_of(data) == MARKER_PREFIX and not self._in_transaction:
                (lsn,) = struct.unpack_from(">Q", data, 2)
                return Marker(int(lsn))
            return None
        if kind in (b"Y", b"O"):
            return None  # types and origins: nothing is applied from them (POSTGRESQL.md 8)
        if kind == b"R":
            self._relation(data)
            return None
        if self._skipping:
            return None
        if kind == b"T":
            self._truncate(data, out)
        elif kind and kind[0] in CHANGE_KINDS:
            relid = pgoutput.relation_id(data)
            rel = self._known(relid)
            if rel is None:
                return None
            self._change(relid, out)
            self._write(data, out)
            self._count(rel, CHANGE_KINDS.index(kind[0]))
        else:
            raise SourceError(f"the replication stream sent a message of type {kind!r}, which "
                              "pgoutput protocol 1 does not have")  # fmt: skip
        return None

    def _relation(self, data: bytes) -> None:
        rel = pgoutput.read_relation(data)
        table = self.tables.get((rel.schema, rel.name))
        if table is None:
            self.relations[rel.relid] = None  # published, but not part of this copy
            return
        copied = [c.name for c in table.columns]
        sent = [c[0] for c in rel.columns]
        if sent != copied:
            raise SourceError(
                f"table {table.display} changed after the snapshot (its columns were "
                f"{', '.join(copied)}, they are now {', '.join(sent)}): DDL is not carried by "
                "logical decoding",
                hint="the follow cannot go on: run the migration again from a new snapshot, "
                "or make schema changes only after the cut-over",
            )
        self.relations[rel.relid] = (rel, data)

    def _known(self, relid: int) -> Relation | None:
        if relid not in self.relations:
            raise SourceError(f"the replication stream changed relation {relid} before "
                              "describing it")  # fmt: skip
        entry = self.relations[relid]
        return None if entry is None else entry[0]

    def _change(self, relid: int, out: list[bytes]) -> None:
        """Before a change: the held Begin, and the relation's message if this segment lacks it."""
        if not self._written:
            assert self._begin is not None  # noqa: S101 - a change comes inside a transaction
            self._write(self._begin, out)
            self._written = True
        entry = self.relations[relid]
        assert entry is not None  # noqa: S101 - checked by _known
        if self.segment.emitted.get(relid) != entry[1]:
            self._write(entry[1], out)
            self.segment.emitted[relid] = entry[1]

    def _truncate(self, data: bytes, out: list[bytes]) -> None:
        options, relids = pgoutput.truncated_relations(data)
        ours = [r for r in relids if self._known(r) is not None]
        if not ours:
            return
        for relid in ours:
            self._change(relid, out)
            self.truncated.add(relid)
        if len(ours) != len(relids):  # keep only the copied tables in the message
            data = b"T" + struct.pack(">IB", len(ours), options)
            data += b"".join(struct.pack(">I", r) for r in ours)
        self._write(data, out)
        for relid in ours:
            rel = self._known(relid)
            assert rel is not None  # noqa: S101
            self._count(rel, 3)

    def _count(self, rel: Relation, which: int) -> None:
        self.segment.counts.setdefault((rel.schema, rel.name), [0, 0, 0, 0])[which] += 1

    def _write(self, message: bytes, out: list[bytes]) -> None:
        record = pgoutput.frame(message)
        self.segment.size += len(record)
        out.append(record)
