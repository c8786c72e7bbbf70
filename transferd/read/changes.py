"""Read a follow job's changes back: its change lists, each segment, and each decoded change.

Shared by ``restore`` (which applies them, restore/pgchanges.py) and ``verify`` (which replays
them over the snapshot's rows, verify/pgchanges.py). In order:

- ``segments``: the change lists the manifest names, each checked against its SHA-256 and
  decoded (the ranges' succession across lists, SPEC.md §11.5), then each segment fetched,
  checked and opened with the job key: one segment in memory at a time;
- ``stream``: a segment stream's chunks, fetched from the packs and opened (tag, chunk id),
  its size and BLAKE3 checked at its end;
- ``events``: a changes stream decoded into Begin, change and Commit events, one message at a
  time (a transaction of any size is never held whole), checked by the light pass of
  core/pgoutput.py and, at its end, against the segment's header.

Values are decoded by pypgoutput (its ``decoders`` only: they are plain stdlib code), behind
``decode_change``, so that the package can be swapped for another pgoutput decoder in one place.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import blake3

from transferd.core import catalog, changes, envelope, pgoutput
from transferd.core.changes import ChangeRef, ChangeSegment, Stream
from transferd.core.jobkey import JobKey
from transferd.core.manifest import SignedManifest
from transferd.core.objectlist import ObjectRef
from transferd.errors import FormatError, IntegrityError
from transferd.read.fetch import PackIndex, PackReader, fetch_checked
from transferd.stores.base import Store
from transferd.util.extras import needs


class Unchanged:
    """A TOASTed value an UPDATE did not change: pgoutput does not send it (``u``)."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = Unchanged()
Value = str | None | Unchanged


@dataclass(frozen=True)
class Relation:
    relid: int
    schema: str
    name: str
    identity: str
    columns: tuple[str, ...]
    key: tuple[int, ...]
    """Positions of the key columns (pgoutput's flag 1); empty for REPLICA IDENTITY FULL."""


@dataclass(frozen=True)
class Begin:
    final_lsn: int


@dataclass(frozen=True)
class Commit:
    end_lsn: int


@dataclass(frozen=True)
class Change:
    op: str
    """``I``, ``U``, ``D`` or ``T``."""
    relation: Relation | None
    new: tuple[Value, ...] | None = None
    old: tuple[Value, ...] | None = None
    """The old key (``K``) or the whole old row (``O``, REPLICA IDENTITY FULL), if sent."""
    old_kind: str | None = None
    truncated: tuple[Relation, ...] = ()
    options: int = 0
    """TRUNCATE's option bits: 1 CASCADE, 2 RESTART IDENTITY."""


Event = Begin | Change | Commit


async def change_refs(store: Store, signed: SignedManifest) -> list[ChangeRef]:
    """Every change segment the manifest lists, in order, the lists checked as SPEC 11.5 says."""
    job = signed.body.job
    refs: list[ChangeRef] = []
    checker = changes.ChainChecker()
    for ref in signed.body.changes or ():
        data = await fetch_checked(store, job, ref, "change list")
        entries = changes.decode_list(data)
        checker.feed(entries)
        refs += entries
    return refs


class ChangeReader:
    """One version of a follow job's changes, read with its key."""

    def __init__(self, store: Store, signed: SignedManifest, key: JobKey) -> None:
        self.store = store
        self.signed = signed
        self.job = signed.body.job
        self.key = key
        self.packs = PackReader(
            store, self.job, PackIndex(store, self.job, signed.body.object_lists)
        )

    async def source_record(self) -> dict[str, Any]:
        """The catalog's source record: the first record of its first segment."""
        catalog_refs = self.signed.body.catalog
        if not catalog_refs:
            raise FormatError(f"manifest {self.signed.body.sequence} names no catalog")
        data = await fetch_checked(self.store, self.job, catalog_refs[0], "catalog segment")
        records = await asyncio.to_thread(catalog.open_segment, self.key.catalog_key, 0, data)
        return dict(records[0]) if records and records[0].get("t") == "source" else {}

    async def check_follows_snapshot(self, refs: list[ChangeRef]) -> None:
        """The changes continue the snapshot: its catalog's source record was read from the slot
        and the first segment starts at the slot's consistent point (SPEC §11.5, [R-CG-ORIGIN],
        [R-CG-FROM-SNAPSHOT])."""
        changes.check_follows_snapshot(await self.source_record(), refs[0] if refs else None)

    async def segment(self, ref: ChangeRef) -> ChangeSegment:
        data = await fetch_checked(self.store, self.job, ObjectRef(ref.sha256, ref.size),
                                   "change segment")  # fmt: skip
        return changes.open_segment(self.key.catalog_key, ref, data)

    async def stream(self, stream: Stream) -> AsyncIterator[bytes]:
        """The stream's plaintext, chunk by chunk; IntegrityError at its end if its size or
        BLAKE3 is not the segment's."""
        hasher = blake3.blake3()
        size = 0
        spans: dict[int, list[tuple[int, int]]] = {}
        for r in stream.refs:  # a fetch may join the stream's other chunks of the same pack
            spans.setdefault(r.pack_index, []).append((r.offset, r.offset + r.blob_len))
        for ref in stream.refs:
            blob = await self.packs.blob(ref, spans[ref.pack_index])
            data = await asyncio.to_thread(
                envelope.open_chunk, self.key, ref.chunk_id, blob, ref.plain_len
            )
            hasher.update(data)
            size += len(data)
            yield data
        if size != stream.size or hasher.hexdigest() != stream.blake3:
            raise IntegrityError("a change stream does not match its size and BLAKE3: the copy "
                                 "is damaged or was altered")  # fmt: skip

    async def events(self, ref: ChangeRef, segment: ChangeSegment) -> AsyncIterator[Event]:
        """The segment's changes, decoded, in order; the stream checked (POSTGRESQL.md §8)."""
        checker = pgoutput.StreamChecker(ref.start_lsn, ref.end_lsn)
        decoder = Decoder()
        framer = pgoutput.Framer()
        async for data in self.stream(segment.changes):
            for message in framer.feed(data):
                checker.feed(message)
                event = decoder.feed(message)
                if event is not None:
                    yield event
        framer.finish()
        changes.check_counts(checker.finish(), segment.transactions, segment.tables)

    async def text(self, stream: Stream) -> bytes:
        """A small stream whole (the cut-over's sequences: their number of ``setval`` lines
        checked against the cutover record's, [R-CG-SEQUENCES])."""
        data = b"".join([piece async for piece in self.stream(stream)])
        if stream.setval_lines is not None:
            changes.check_sequences(data, stream.setval_lines)
        return data


class Decoder:
    """pgoutput protocol 1 messages to events, with the stream's relations."""

    def __init__(self) -> None:
        self.relations: dict[int, Relation] = {}

    def feed(self, message: bytes) -> Event | None:
        kind = message[:1]
        if kind == b"B":
            return Begin(pgoutput.read_begin(message).final_lsn)
        if kind == b"C":
            return Commit(pgoutput.read_commit(message).end_lsn)
        if kind == b"R":
            r = pgoutput.read_relation(message)
            self.relations[r.relid] = Relation(
                r.relid, r.schema, r.name, r.identity, tuple(c[0] for c in r.columns),
                tuple(i for i, c in enumerate(r.columns) if c[3]),
            )  # fmt: skip
            return None
        return decode_change(message, self.relations)


def decode_change(message: bytes, relations: dict[int, Relation]) -> Change:
    """One I, U, D or T message, decoded by pypgoutput."""
    with needs("postgres"):  # imported when a copy with changes is read
        from pypgoutput import decoders

    kind = message[:1]
    try:
        if kind == b"I":
            m: Any = decoders.Insert(message)
            return Change("I", relations[m.relation_id], new=_values(m.new_tuple))
        if kind == b"U":
            m = decoders.Update(message)
            old = None if m.old_tuple is None else _values(m.old_tuple)
            return Change("U", relations[m.relation_id], new=_values(m.new_tuple), old=old,
                          old_kind=m.optional_tuple_identifier)  # fmt: skip
        if kind == b"D":
            m = decoders.Delete(message)
            return Change("D", relations[m.relation_id], old=_values(m.old_tuple),
                          old_kind=m.message_type)  # fmt: skip
        if kind == b"T":
            m = decoders.Truncate(message)
            return Change("T", None, truncated=tuple(relations[r] for r in m.relation_ids),
                          options=int(m.option_bits))  # fmt: skip
    except (ValueError, UnicodeDecodeError, IndexError) as e:
        raise FormatError(f"a change message does not decode: {e}") from None
    except KeyError:
        raise FormatError("a change names a relation its stream did not describe") from None
    raise FormatError(f"change stream message of type {kind!r} is not a change")


def _values(t: Any) -> tuple[Value, ...]:
    out: list[Value] = []
    for c in t.column_data:
        if c.col_data_category == "n":
            out.append(None)
        elif c.col_data_category == "u":
            out.append(UNCHANGED)
        elif c.col_data_category == "t":
            out.append(c.col_data)
        else:
            raise FormatError(f"a change's value is of kind {c.col_data_category!r}")
    return tuple(out)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
