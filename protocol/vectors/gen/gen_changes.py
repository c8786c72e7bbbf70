"""changes.json: a follow job's change lists, change segments and pgoutput-1 streams (SPEC 11.5,
POSTGRESQL.md 8). One fault per vector; ``object`` says which of the three a vector is."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import blake3
from common import JOB_KEY, Vector, det, flip_bit, vector, vector_file

from transferd.core import canonical
from transferd.core.changes import ChangeRef, encode_list, seal_segment
from transferd.core.pgoutput import frame, lsn_text

FMT, INTEGRITY, AUTH = "format failure", "integrity failure", "authentication failure"
EMPTY_BLAKE3 = blake3.blake3(b"").hexdigest()
START = 0x19A0160
"""The slot's consistent point in these vectors: 0/19A0160."""


# --- pgoutput protocol 1 messages, as a PostgreSQL 15 server sends them ------------------------


def begin(final_lsn: int, xid: int) -> bytes:
    return b"B" + struct.pack(">QqI", final_lsn, 816_000_000_000_000, xid)


def commit(commit_lsn: int, end_lsn: int) -> bytes:
    return b"C" + struct.pack(">BQQq", 0, commit_lsn, end_lsn, 816_000_000_000_000)


def relation(relid: int, schema: str, name: str, identity: str,
             columns: list[tuple[str, int, bool]]) -> bytes:  # fmt: skip
    out = b"R" + struct.pack(">I", relid) + schema.encode() + b"\0" + name.encode() + b"\0"
    out += identity.encode() + struct.pack(">H", len(columns))
    for col, typ, key in columns:
        out += bytes([1 if key else 0]) + col.encode() + b"\0" + struct.pack(">Ii", typ, -1)
    return out


def tuple_data(values: list[str | None]) -> bytes:
    out = struct.pack(">H", len(values))
    for v in values:
        out += b"n" if v is None else b"t" + struct.pack(">I", len(v.encode())) + v.encode()
    return out


def insert(relid: int, values: list[str | None]) -> bytes:
    return b"I" + struct.pack(">I", relid) + b"N" + tuple_data(values)


def update(relid: int, values: list[str | None]) -> bytes:
    return b"U" + struct.pack(">I", relid) + b"N" + tuple_data(values)


def delete(relid: int, key: list[str | None]) -> bytes:
    return b"D" + struct.pack(">I", relid) + b"K" + tuple_data(key)


def truncate(relids: list[int]) -> bytes:
    return (
        b"T" + struct.pack(">IB", len(relids), 0) + b"".join(struct.pack(">I", r) for r in relids)
    )


ACCT = relation(16385, "public", "acct", "d", [("id", 23, True), ("balance", 1700, False)])
SCRATCH = relation(16390, "public", "scratch", "f", [("k", 25, False)])
T1 = [begin(0x19A1000, 751), ACCT, insert(16385, ["1", "10.50"]),
      update(16385, ["1", "11.00"]), commit(0x19A1000, 0x19A1030)]  # fmt: skip
T2 = [begin(0x19A2000, 752), ACCT, delete(16385, ["1", None]), SCRATCH, truncate([16390]),
      commit(0x19A2000, 0x19A2030)]  # fmt: skip
END = 0x19A2030
TABLES = [["public", "acct", 1, 1, 1, 0], ["public", "scratch", 0, 0, 0, 1]]


def stream(*messages: bytes) -> bytes:
    return b"".join(frame(m) for m in messages)


STREAM = stream(*T1, *T2)


# --- change lists ------------------------------------------------------------------------------

SEG_A = ChangeRef(det("change segment A"), 1234, START, 0x19A2030)
SEG_B = ChangeRef(det("change segment B"), 987, 0x19A2030, 0x2000010, cutover=True)


def _raw_list(*entries: tuple[bytes, int, int, int, int], count: int | None = None) -> bytes:
    body = b"".join(struct.pack(">32sQQQB", *e) for e in entries)
    return b"TDCL\x01" + struct.pack(">I", len(entries) if count is None else count) + body


def _entry(ref: ChangeRef, flags: int | None = None) -> tuple[bytes, int, int, int, int]:
    return (ref.sha256, ref.size, ref.start_lsn, ref.end_lsn,
            (1 if ref.cutover else 0) if flags is None else flags)  # fmt: skip


def _list_vector(name: str, comment: str, data: bytes, expect: str = "success",
                 flags: tuple[str, ...] = (), sha256: str | None = None,
                 entries: list[ChangeRef] | None = None) -> Vector:  # fmt: skip
    return vector(name, comment, expect, flags, object="change_list", list=data.hex(),
                  sha256=sha256 or hashlib.sha256(data).hexdigest(),
                  entries=None if entries is None else [e.to_json() for e in entries])  # fmt: skip


def _lists() -> list[Vector]:
    good = encode_list([SEG_A, SEG_B])
    a, b = _entry(SEG_A), _entry(SEG_B)
    return [
        _list_vector("list_two_segments", "two segments, the second the cut-over (flag 0x01)",
                     good, flags=("Deterministic",), entries=[SEG_A, SEG_B]),
        _list_vector("list_one_segment", "one segment, not yet cut over",
                     encode_list([SEG_A]), flags=("Deterministic",), entries=[SEG_A]),
        _list_vector("list_bad_magic", "magic TDCX", b"TDCX" + good[4:], FMT, ("Malformed",)),
        _list_vector("list_version_2", "version byte 2", good[:4] + b"\x02" + good[5:],
                     "unsupported version", ("UnknownVersion",)),
        _list_vector("list_count_above_entries", "the count says 3, two entries follow",
                     _raw_list(a, b, count=3), FMT, ("Bounds",)),
        _list_vector("list_partial_entry", "the last entry cut short by one byte", good[:-1],
                     FMT, ("Bounds",)),
        _list_vector("list_empty", "a count of 0 and no entry", _raw_list(), FMT, ("Bounds",)),
        _list_vector("list_count_above_limit", "the count says 65537 (the limit is 65536)",
                     good[:5] + struct.pack(">I", 65537), FMT, ("Bounds",)),
        _list_vector("list_empty_range", "a segment whose end LSN is its start LSN",
                     _raw_list((a[0], a[1], a[2], a[2], 0)), FMT, ("Malformed",)),
        _list_vector("list_gap", "the second segment starts 16 bytes after the first ends",
                     _raw_list(a, (b[0], b[1], b[2] + 16, b[3], 1)), FMT, ("Malformed",)),
        _list_vector("list_overlap", "the second segment starts before the first ends",
                     _raw_list(a, (b[0], b[1], b[2] - 16, b[3], 1)), FMT, ("Malformed",)),
        _list_vector("list_unknown_flag", "flag 0x02, which the format does not define",
                     _raw_list(a, _entry(SEG_B, 0x02)), FMT, ("UnknownVersion",)),
        _list_vector("list_after_cutover", "a segment after the cut-over segment",
                     _raw_list(_entry(SEG_A, 1), _entry(SEG_B)), FMT, ("Malformed",)),
        _list_vector("list_segment_twice", "one segment named twice, with consecutive ranges",
                     _raw_list(a, (a[0], a[1], a[3], b[3], 0)), FMT, ("Malformed",)),
        _list_vector("list_lsn_bit_flipped", "one bit of an end LSN flipped, under the list's "
                     "original name", flip_bit(good, 9 + 32 + 8 + 8 + 7), INTEGRITY,
                     ("NameMismatch", "Tampered"), sha256=hashlib.sha256(good).hexdigest()),
    ]  # fmt: skip


# --- change segments ---------------------------------------------------------------------------


def _lines(*records: dict[str, Any]) -> bytes:
    return b"".join(canonical.dumps(r, checked=False) + b"\n" for r in records)


HEAD = {"t": "changes", "format": "pgoutput-1", "start_lsn": lsn_text(START),
        "end_lsn": lsn_text(END), "transactions": 2, "tables": TABLES}  # fmt: skip
CHUNKS = {"t": "chunks", "c": [[3, 5, len(STREAM) + 41, len(STREAM), det("change chunk").hex()]]}
STREAM_END = {"t": "end", "size": len(STREAM), "blake3": blake3.blake3(STREAM).hexdigest()}
SEQUENCES = b'SELECT pg_catalog.setval(\'"public"."acct_id_seq"\', 2344, true);\n'
CUTOVER_END = 0x2000010


def _segment_vector(name: str, comment: str, records: bytes, expect: str = "success",
                    flags: tuple[str, ...] = (), *, start: int = START, end: int = END,
                    cutover: bool = False, open_as: tuple[int, int] | None = None,
                    tamper: int | None = None, valid: bool = False,
                    head: bytes | None = None) -> Vector:  # fmt: skip
    nonce = det(f"change segment nonce {name}", 24)
    data = seal_segment(JOB_KEY.catalog_key, start, end, records, nonce)
    if tamper is not None:
        data = flip_bit(data, tamper)
    if head is not None:
        data = head + data[len(head) :]
    entry_start, entry_end = open_as or (start, end)
    entry = ChangeRef(hashlib.sha256(data).digest(), len(data), entry_start, entry_end, cutover)
    return vector(
        name, comment, expect, flags, object="change_segment", job_key=JOB_KEY.key.hex(),
        entry=entry.to_json(), segment=data.hex(), sha256=entry.name,
        nonce=nonce.hex() if valid else None,
        records=[canonical.loads(line, "record") for line in records.splitlines()]
        if valid else None,
    )  # fmt: skip


def _segments() -> list[Vector]:
    good = _lines(HEAD, CHUNKS, STREAM_END)
    cut_head = HEAD | {"end_lsn": lsn_text(CUTOVER_END)}
    seq_chunks = {"t": "chunks", "c": [[4, 5, len(SEQUENCES) + 41, len(SEQUENCES),
                                        det("sequences chunk").hex()]]}  # fmt: skip
    seq_end = {"t": "end", "size": len(SEQUENCES), "blake3": blake3.blake3(SEQUENCES).hexdigest()}
    cutover = _lines(cut_head, CHUNKS, STREAM_END, {"t": "cutover", "sequences": 1}, seq_chunks,
                     seq_end)  # fmt: skip
    empty_end = {"t": "end", "size": 0, "blake3": EMPTY_BLAKE3}
    empty_cut = HEAD | {"start_lsn": lsn_text(END), "end_lsn": lsn_text(CUTOVER_END),
                        "transactions": 0, "tables": []}  # fmt: skip
    c = (CUTOVER_END,)
    return [
        _segment_vector("segment_two_transactions", "two transactions touching two tables",
                        good, flags=("Deterministic",), valid=True),
        _segment_vector("segment_cutover", "the cut-over segment: changes, then the sequences",
                        cutover, flags=("Deterministic",), end=CUTOVER_END, cutover=True,
                        valid=True),
        _segment_vector("segment_cutover_empty", "a cut-over segment with no transaction left",
                        _lines(empty_cut, empty_end, {"t": "cutover", "sequences": 1},
                               seq_chunks, seq_end),
                        flags=("Deterministic", "Boundary"), start=END, end=CUTOVER_END,
                        cutover=True, valid=True),
        _segment_vector("segment_other_range", "sealed for (0/19A0160, 0/19A2030], listed as "
                        "ending at 0/19A2040: opened with another range", good, AUTH,
                        ("Tampered",), open_as=(START, END + 16)),
        _segment_vector("segment_bad_magic", "magic TDCX", good, FMT, ("Malformed",),
                        head=b"TDCX"),
        _segment_vector("segment_version_2", "version byte 2", good, "unsupported version",
                        ("UnknownVersion",), head=b"TDCG\x02"),
        _segment_vector("segment_tag_flipped", "one bit of the tag flipped", good, AUTH,
                        ("Tampered",), tamper=-1),
        _segment_vector("segment_head_range_differs", "sealed for the listed range, but the "
                        "changes record names another end", _lines(
                            HEAD | {"end_lsn": lsn_text(END + 16)}, CHUNKS, STREAM_END),
                        FMT, ("Malformed",)),
        _segment_vector("segment_lsn_leading_zero", "start_lsn written 0/019A0160",
                        _lines(HEAD | {"start_lsn": "0/019A0160"}, CHUNKS, STREAM_END),
                        FMT, ("NonCanonical",)),
        _segment_vector("segment_lsn_lower_case", "end_lsn written in lower case",
                        _lines(HEAD | {"end_lsn": lsn_text(END).lower()}, CHUNKS, STREAM_END),
                        FMT, ("NonCanonical",)),
        _segment_vector("segment_unknown_format", "format pgoutput-2",
                        _lines(HEAD | {"format": "pgoutput-2"}, CHUNKS, STREAM_END), FMT,
                        ("UnknownVersion",)),
        _segment_vector("segment_head_extra_member", "the changes record has a member xid",
                        _lines(HEAD | {"xid": 751}, CHUNKS, STREAM_END), FMT, ("Malformed",)),
        _segment_vector("segment_tables_out_of_order", "scratch listed before acct",
                        _lines(HEAD | {"tables": TABLES[::-1]}, CHUNKS, STREAM_END), FMT,
                        ("Malformed",)),
        _segment_vector("segment_table_without_change", "a table listed with four zero counts",
                        _lines(HEAD | {"tables": [*TABLES, ["public", "t", 0, 0, 0, 0]]},
                               CHUNKS, STREAM_END), FMT, ("Malformed",)),
        _segment_vector("segment_no_transaction", "no transaction in a segment that is not the "
                        "cut-over", _lines(HEAD | {"transactions": 0, "tables": []}, empty_end),
                        FMT, ("Malformed",)),
        _segment_vector("segment_cutover_unflagged", "a cutover record in a segment the list "
                        "does not flag", cutover, FMT, ("Malformed",), end=CUTOVER_END),
        _segment_vector("segment_flagged_without_cutover", "flagged as the cut-over, without "
                        "its cutover record", good, INTEGRITY, ("Truncated",), cutover=True),
        _segment_vector("segment_end_size_differs", "the end record says one byte more than "
                        "the chunks hold", _lines(HEAD, CHUNKS, STREAM_END | {
                            "size": len(STREAM) + 1}), INTEGRITY, ("Bounds",)),
        _segment_vector("segment_without_end", "the changes stream's end record never comes",
                        _lines(HEAD, CHUNKS), INTEGRITY, ("Truncated",)),
        _segment_vector("segment_record_after_end", "a chunks record after the cut-over "
                        "stream's end", cutover + _lines(seq_chunks), FMT, ("Malformed",),
                        end=c[0], cutover=True),
        _segment_vector("segment_starts_with_chunks", "the first record is not the changes "
                        "record", _lines(CHUNKS, HEAD, STREAM_END), FMT, ("Malformed",)),
    ]  # fmt: skip


# --- pgoutput-1 streams ------------------------------------------------------------------------


def _stream_vector(name: str, comment: str, data: bytes, expect: str = "success",
                   flags: tuple[str, ...] = (), *, end: int = END, transactions: int = 2,
                   tables: list[list[Any]] | None = None) -> Vector:  # fmt: skip
    return vector(name, comment, expect, flags, object="change_stream", stream=data.hex(),
                  start_lsn=lsn_text(START), end_lsn=lsn_text(end), transactions=transactions,
                  tables=TABLES if tables is None else tables)  # fmt: skip


def _streams() -> list[Vector]:
    t1_late = [begin(0x19A3000, 753), ACCT, insert(16385, ["2", "0"]), commit(0x19A3000, 0x19A3030)]
    return [
        _stream_vector("stream_two_transactions", "insert and update, then delete and truncate",
                       STREAM, flags=("Deterministic",)),
        _stream_vector("stream_empty", "no transaction at all: what an empty cut-over segment "
                       "holds", b"", transactions=0, tables=[], flags=("Boundary",)),
        _stream_vector("stream_zero_length_record", "a record of length 0",
                       STREAM + b"\0\0\0\0", FMT, ("Malformed",)),
        _stream_vector("stream_record_cut_short", "the last record one byte short", STREAM[:-1],
                       FMT, ("Bounds",)),
        _stream_vector("stream_change_outside_transaction", "an Insert before any Begin",
                       stream(ACCT, *T1, *T2), FMT, ("Malformed",)),
        _stream_vector("stream_type_message", "a Type message (Y), which a stream never holds",
                       stream(T1[0], b"Y" + struct.pack(">I", 16400) + b"public\0mood\0",
                              *T1[1:], *T2), FMT, ("Malformed",)),
        _stream_vector("stream_change_before_relation", "a Delete of a relation whose Relation "
                       "message comes later", stream(*T1[:1], *T1[2:], *T2), FMT,
                       ("Malformed",)),
        _stream_vector("stream_commit_lsn_differs", "a Commit at another LSN than its Begin's",
                       stream(*T1[:-1], commit(0x19A1008, 0x19A1030), *T2), FMT,
                       ("Malformed",)),
        _stream_vector("stream_end_lsn_not_increasing", "the second transaction ends before "
                       "the first", stream(*T2, *T1), INTEGRITY, ("Malformed",)),
        _stream_vector("stream_end_lsn_beyond_range", "a third transaction ending after the "
                       "segment's end LSN", stream(*T1, *T2, *t1_late), INTEGRITY, ("Bounds",),
                       transactions=3, tables=[["public", "acct", 2, 1, 1, 0], TABLES[1]]),
        _stream_vector("stream_ends_inside_transaction", "the last Commit is missing",
                       stream(*T1, *T2[:-1]), INTEGRITY, ("Truncated",)),
        _stream_vector("stream_transactions_differ", "the header says 3 transactions, the "
                       "stream holds 2", STREAM, INTEGRITY, ("Bounds",), transactions=3),
        _stream_vector("stream_table_counts_differ", "the header says 2 inserts into acct, "
                       "the stream holds 1", STREAM, INTEGRITY, ("Bounds",),
                       tables=[["public", "acct", 2, 1, 1, 0], TABLES[1]]),
    ]  # fmt: skip


# --- the changes against the snapshot, and the cut-over's sequences ---------------------------

SOURCE = {"t": "source", "kind": "postgresql", "host": "db.example", "database": "snds",
          "snapshot": "00000003-0000001B-1", "snapshot_origin": "slot", "slot": "transferd_snds",
          "publication": "transferd_snds", "consistent_lsn": lsn_text(START)}  # fmt: skip


def _origin_vector(name: str, comment: str, expect: str = "success",
                   flags: tuple[str, ...] = (), *, source: dict[str, Any] = SOURCE,
                   first: ChangeRef = SEG_A) -> Vector:  # fmt: skip
    return vector(name, comment, expect, flags, object="change_origin", source=source,
                  entry=first.to_json())  # fmt: skip


def _origins() -> list[Vector]:
    later = ChangeRef(SEG_A.sha256, SEG_A.size, START + 0x10, SEG_A.end_lsn)
    earlier = ChangeRef(SEG_A.sha256, SEG_A.size, START - 0x10, SEG_A.end_lsn)
    return [
        _origin_vector("origin_from_snapshot", "a slot's snapshot, the first segment starting "
                       "at its consistent point"),
        _origin_vector("origin_exported_snapshot", "changes over a snapshot the sender "
                       "exported itself (snapshot_origin exported): nothing ties them to it",
                       FMT, ("Malformed",), source=SOURCE | {"snapshot_origin": "exported"}),
        _origin_vector("origin_given_snapshot", "changes over a snapshot the operator gave "
                       "(snapshot_origin given)", FMT, ("Malformed",),
                       source=SOURCE | {"snapshot_origin": "given"}),
        _origin_vector("origin_first_segment_later", "the first segment starts 16 bytes of WAL "
                       "after the consistent point: the changes between are missing", INTEGRITY,
                       ("Bounds",), first=later),
        _origin_vector("origin_first_segment_earlier", "the first segment starts 16 bytes of "
                       "WAL before the consistent point: changes the snapshot holds again",
                       INTEGRITY, ("Bounds",), first=earlier),
    ]  # fmt: skip


def _sequences_vector(name: str, comment: str, text: bytes, count: int,
                      expect: str = "success", flags: tuple[str, ...] = ()) -> Vector:  # fmt: skip
    return vector(name, comment, expect, flags, object="cutover_sequences", stream=text.hex(),
                  sequences=count)  # fmt: skip


SEQUENCES_COMMENT = b"-- transferd: the values of 1 sequences at the cut-over\n"


def _sequences() -> list[Vector]:
    two = SEQUENCES + SEQUENCES.replace(b"acct_id_seq", b"scratch_k_seq").replace(b"2344", b"7")
    return [
        _sequences_vector("sequences_one", "one setval line, the cutover record says 1",
                          SEQUENCES, 1),
        _sequences_vector("sequences_comment", "a -- comment line, then one setval line: 1",
                          SEQUENCES_COMMENT + SEQUENCES, 1),
        _sequences_vector("sequences_none", "no sequence: an empty stream, the record says 0",
                          b"", 0, flags=("Boundary",)),
        _sequences_vector("sequences_line_missing", "the cutover record says 2, the stream "
                          "holds 1 setval line", SEQUENCES, 2, INTEGRITY, ("Bounds",)),
        _sequences_vector("sequences_line_added", "the cutover record says 1, the stream "
                          "holds 2 setval lines", two, 1, INTEGRITY, ("Bounds",)),
        _sequences_vector("sequences_comment_counted", "the cutover record counts the comment "
                          "line too (2): comments are not setval lines",
                          SEQUENCES_COMMENT + SEQUENCES, 2, INTEGRITY, ("Bounds",)),
    ]  # fmt: skip


def generate() -> dict[str, Any]:
    return vector_file(
        "changes",
        "A follow job's changes (SPEC 11.5, POSTGRESQL.md 8). object 'change_list': "
        "list = 'TDCL' || 0x01 || u32(n) || n x (sha256 || u64 size || u64 start_lsn || u64 "
        "end_lsn || u8 flags); check sha256 first, then parse; encode(entries) = list. object "
        "'change_segment': open segment with K_catalog of job_key under the AD built from "
        "entry's range (entry.cutover: the list's flag), check its records; Deterministic: "
        "seal(records, nonce) = segment. object 'change_stream': run the stream rules over "
        "stream, with start_lsn and end_lsn as the segment's range, then compare the number "
        "of transactions and the per-table counts with transactions and tables (the "
        "segment header's). object 'change_origin': source is the catalog's source record, "
        "entry the first change list entry; the changes continue the snapshot when "
        "source.snapshot_origin is 'slot' and entry.start_lsn is source.consistent_lsn. "
        "object 'cutover_sequences': stream is the cut-over's sequences stream; its lines that "
        "are not empty and do not start with '--' number sequences (the cutover record's).",
        [*_lists(), *_segments(), *_streams(), *_origins(), *_sequences()],
    )
