"""The ``pgoutput-1`` change stream: framing, and the light pass that reads only its skeleton.

A change segment's stream (protocol/POSTGRESQL.md §8) is PostgreSQL's own logical replication
messages, protocol version 1 (the manual, "Logical Replication Message Formats"), each framed by
its length::

    stream = *( u32(len(message)) || message )          len(message) >= 1

Why a pass of our own beside pypgoutput, which the restore decodes with: the sender has to know,
for every message it receives, where transactions begin and end (it seals whole transactions
only), each commit's end LSN (what it confirms to the slot), and which relation a change touches
(the per-table counts of the encrypted header, and the Relation message each stream must carry
before its first use). pypgoutput decodes every value of every row into Python strings: 60,000
messages/s on this machine, below what one busy server writes. Reading only the first byte, the
relation id and the few fixed fields of Begin, Commit, Relation and Truncate runs at about a
million messages/s. tests/core/test_pgoutput.py checks this pass against pypgoutput on the
same stream.

``StreamChecker`` is also what a reader runs over a stream before applying it: the order of
messages, the counts against the segment's header. Pure: bytes in, facts out.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from transferd.errors import FormatError, IntegrityError

_U32 = struct.Struct(">I")
_BEGIN = struct.Struct(">QqI")  # final LSN, commit time (µs since 2000-01-01), xid
_COMMIT = struct.Struct(">BQQq")  # flags, commit LSN, end LSN, commit time
_RELID = struct.Struct(">I")
_TRUNCATE_HEAD = struct.Struct(">IB")  # relations, options

CHANGE_KINDS = b"IUDT"
"""The messages that change rows, counted per table in a segment's header (in this order)."""
STREAM_KINDS = frozenset(b"BCRIUDT")
"""The only messages a stream holds: Type, Origin and logical Message messages are dropped by
the sender (nothing is applied from them)."""
PG_EPOCH_UNIX_US = 946_684_800 * 1_000_000
"""PostgreSQL's epoch (2000-01-01 UTC) in microseconds since 1970: commit times count from it."""


def frame(message: bytes | memoryview) -> bytes:
    """One record of a stream."""
    if not message:
        raise ValueError("an empty pgoutput message cannot be framed")
    return _U32.pack(len(message)) + bytes(message)


def frames(data: bytes | memoryview) -> Iterator[memoryview]:
    """The messages of a stream, in order; FormatError on a zero length or a cut record."""
    view = memoryview(data)
    at, end = 0, len(view)
    while at < end:
        if end - at < 4:
            raise FormatError(f"change stream ends inside a record length at byte {at}")
        (length,) = _U32.unpack_from(view, at)
        if length == 0:
            raise FormatError(f"change stream has an empty record at byte {at}")
        at += 4
        if end - at < length:
            raise FormatError(f"change stream record at byte {at - 4} is cut short")
        yield view[at : at + length]
        at += length


class Framer:
    """Cuts a stream fed in pieces of any size into its messages (a reader's chunks)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes | memoryview) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        at = 0
        while len(buf) - at >= 4:
            (length,) = _U32.unpack_from(buf, at)
            if length == 0:
                raise FormatError("change stream has an empty record")
            if len(buf) - at - 4 < length:
                break
            out.append(bytes(buf[at + 4 : at + 4 + length]))
            at += 4 + length
        del buf[:at]
        return out

    def finish(self) -> None:
        if self._buf:
            raise FormatError(f"change stream ends inside a record ({len(self._buf)} bytes)")


# --- the light pass ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int
    """The LSN of the transaction's commit record."""
    commit_time_us: int
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    """The end of the commit record: what a consumer confirms once the transaction is stored."""
    commit_time_us: int


@dataclass(frozen=True, slots=True)
class Relation:
    relid: int
    schema: str
    name: str
    identity: str
    """relreplident: ``d`` default (the primary key), ``i`` an index, ``f`` full, ``n`` nothing."""
    columns: tuple[tuple[str, int, int, bool], ...]
    """(name, type oid, typmod, part of the key) of each column sent (no generated ones)."""


def read_begin(message: bytes | memoryview) -> Begin:
    if len(message) != 1 + _BEGIN.size or message[0] != ord("B"):
        raise FormatError("pgoutput Begin message has the wrong length")
    return Begin(*_BEGIN.unpack_from(message, 1))


def read_commit(message: bytes | memoryview) -> Commit:
    if len(message) != 1 + _COMMIT.size or message[0] != ord("C"):
        raise FormatError("pgoutput Commit message has the wrong length")
    flags, commit_lsn, end_lsn, when = _COMMIT.unpack_from(message, 1)
    if flags != 0:
        raise FormatError(f"pgoutput Commit message has flags {flags} (protocol 1 has none)")
    return Commit(commit_lsn, end_lsn, when)


def relation_id(message: bytes | memoryview) -> int:
    """The relation an Insert, Update, Delete or Relation message is about."""
    if len(message) < 5:
        raise FormatError("pgoutput message too short for its relation id")
    (relid,) = _RELID.unpack_from(message, 1)
    return int(relid)


def truncated_relations(message: bytes | memoryview) -> tuple[int, list[int]]:
    """(options, relation ids) of a Truncate message."""
    if len(message) < 1 + _TRUNCATE_HEAD.size:
        raise FormatError("pgoutput Truncate message too short")
    count, options = _TRUNCATE_HEAD.unpack_from(message, 1)
    if len(message) != 1 + _TRUNCATE_HEAD.size + 4 * count or count == 0:
        raise FormatError("pgoutput Truncate message does not hold its relation ids")
    relids = [int(r) for (r,) in _RELID.iter_unpack(bytes(message[6:]))]
    return int(options), relids


def read_relation(message: bytes | memoryview) -> Relation:
    data = bytes(message)
    if not data.startswith(b"R"):
        raise FormatError("not a pgoutput Relation message")
    try:
        at = 1
        (relid,) = _RELID.unpack_from(data, at)
        at += 4
        schema, at = _cstring(data, at)
        name, at = _cstring(data, at)
        identity = chr(data[at])
        (ncols,) = struct.unpack_from(">H", data, at + 1)
        at += 3
        columns = []
        for _ in range(ncols):
            flags = data[at]
            col, at = _cstring(data, at + 1)
            typ, typmod = struct.unpack_from(">Ii", data, at)
            at += 8
            columns.append((col, int(typ), int(typmod), bool(flags & 1)))
    except (IndexError, struct.error):
        raise FormatError("pgoutput Relation message is cut short") from None
    if at != len(data) or identity not in "dnfi":
        raise FormatError("pgoutput Relation message is malformed")
    return Relation(int(relid), schema, name, identity, tuple(columns))


def _cstring(data: bytes, at: int) -> tuple[str, int]:
    end = data.index(0, at)
    try:
        return data[at:end].decode("utf-8"), end + 1
    except UnicodeDecodeError:
        raise FormatError("pgoutput name is not UTF-8") from None


# --- a whole stream, checked ----------------------------------------------------------------


@dataclass
class StreamSummary:
    """What a stream holds, by the light pass: what the segment header must restate."""

    transactions: int = 0
    first_end_lsn: int | None = None
    last_end_lsn: int | None = None
    last_commit_time_us: int | None = None
    counts: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    """(schema, table) -> [inserts, updates, deletes, truncates]."""


class StreamChecker:
    """Feed a stream's messages in order; ``finish`` returns what it holds.

    The rules (POSTGRESQL.md §8): transactions one after another, each ``B`` then changes then
    ``C``; a ``R`` for a relation before any change to it in this stream (so every stream decodes
    on its own), and again when it changed; commit end LSNs strictly increasing, each after
    ``after`` (the segment's start) and at most ``until`` (its end); nothing else.
    """

    def __init__(self, after: int, until: int) -> None:
        self.after = after
        self.until = until
        self.summary = StreamSummary()
        self.relations: dict[int, Relation] = {}
        self._open: Begin | None = None
        self._messages = 0

    def feed(self, message: bytes | memoryview) -> None:
        n, self._messages = self._messages, self._messages + 1
        kind = message[0]
        if kind not in STREAM_KINDS:
            raise FormatError(
                f"change stream message {n} is of type {chr(kind)!r}, not B C R I U D T"
            )
        if kind == ord("B"):
            if self._open is not None:
                raise FormatError(f"change stream message {n}: a Begin inside a transaction")
            self._open = read_begin(message)
            return
        if self._open is None:
            raise FormatError(f"change stream message {n} ({chr(kind)}) is outside a transaction")
        if kind == ord("C"):
            self._commit(read_commit(message), n)
        elif kind == ord("R"):
            rel = read_relation(message)
            self.relations[rel.relid] = rel
        elif kind == ord("T"):
            _, relids = truncated_relations(message)
            for relid in relids:
                self._count(relid, 3, n)
        else:
            self._count(relation_id(message), CHANGE_KINDS.index(kind), n)

    def _count(self, relid: int, which: int, n: int) -> None:
        rel = self.relations.get(relid)
        if rel is None:
            raise FormatError(
                f"change stream message {n} names relation {relid} before its Relation message"
            )
        self.summary.counts.setdefault((rel.schema, rel.name), [0, 0, 0, 0])[which] += 1

    def _commit(self, commit: Commit, n: int) -> None:
        begin, self._open = self._open, None
        assert begin is not None  # noqa: S101 - checked by feed
        s = self.summary
        if commit.commit_lsn != begin.final_lsn:
            raise FormatError(
                f"change stream message {n}: a Commit at another LSN than its Begin's"
            )
        low = self.after if s.last_end_lsn is None else s.last_end_lsn
        if not low < commit.end_lsn <= self.until:
            raise IntegrityError(
                f"change stream message {n}: a transaction ending at {lsn_text(commit.end_lsn)}, "
                f"outside the segment's range ({lsn_text(low)}, {lsn_text(self.until)}]"
            )
        s.transactions += 1
        s.last_end_lsn = commit.end_lsn
        s.last_commit_time_us = commit.commit_time_us
        if s.first_end_lsn is None:
            s.first_end_lsn = commit.end_lsn

    def finish(self) -> StreamSummary:
        if self._open is not None:
            raise IntegrityError("change stream ends inside a transaction (no Commit)")
        return self.summary


def lsn_text(lsn: int) -> str:
    """PostgreSQL's text form of an LSN, ``%X/%X``: the canonical form (POSTGRESQL.md §8)."""
    if not 0 <= lsn < 1 << 64:
        raise ValueError(f"an LSN is 64 bits, not {lsn}")
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: object, what: str = "LSN") -> int:
    """An LSN in its canonical text form; FormatError for anything else (``0/0A``, lower case)."""
    if not isinstance(text, str) or not _LSN.fullmatch(text):
        raise FormatError(f"{what} {text!r} is not an LSN like 0/19A0160")
    hi, lo = text.split("/")
    value = (int(hi, 16) << 32) | int(lo, 16)
    if lsn_text(value) != text:
        raise FormatError(f"{what} {text!r} is not canonical: {lsn_text(value)}")
    return value


_LSN = re.compile(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}")
