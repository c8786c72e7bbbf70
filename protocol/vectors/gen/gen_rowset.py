"""rowset.json: the multiset digest of a copy-text stream's rows (POSTGRESQL.md §6.2).

Computed here from the definition, in a few lines, and checked against transferd.core.rowset, so
the file pins the definition rather than whatever the module does.
"""

from __future__ import annotations

from typing import Any

import blake3
from common import Vector, data_hex, det, vector, vector_file

from transferd.core.rowset import ROW_CONTEXT, RowMultiset

MODULUS = 2**2048
SALT = det("rowset salt")
"""Drawn at random for each comparison by verify --against; fixed here."""
OTHER_SALT = det("rowset salt other")


def _row_value(salt: bytes, row: bytes) -> int:
    key = blake3.blake3(salt, derive_key_context=ROW_CONTEXT).digest()
    return int.from_bytes(blake3.blake3(row, key=key).digest(256), "little")


def _by_definition(salt: bytes, stream: bytes) -> tuple[int, bytes, str]:
    """(rows, sum as 256 bytes, digest) of a stream that ends with 0x0A (or is empty)."""
    rows = stream.split(b"\n")[:-1]
    total = sum(_row_value(salt, r) for r in rows) % MODULUS
    state = total.to_bytes(256, "little")
    return len(rows), state, blake3.blake3(state + len(rows).to_bytes(8, "little")).hexdigest()


def _lines(*rows: bytes) -> bytes:
    return b"".join(r + b"\n" for r in rows)


def _vector(name: str, comment: str, stream: bytes, feed: list[int] | None = None,
            hashes: bool = False, salt: bytes = SALT) -> Vector:  # fmt: skip
    rows, state, digest = _by_definition(salt, stream)
    core = RowMultiset(salt)
    at = 0
    for size in feed or [len(stream)]:
        core.update(stream[at : at + size])
        at += size
    if at != len(stream) or core.rows != rows or core.hexdigest() != digest:
        raise RuntimeError(f"{name}: transferd.core.rowset disagrees with the definition")
    row_hashes = None
    if hashes:
        lines = stream.split(b"\n")[:-1]
        row_hashes = [_row_value(salt, r).to_bytes(256, "little").hex() for r in lines]
    flags = ("Streaming",) if feed is not None else ()
    return vector(name, comment, flags=flags, salt=salt.hex(), input=data_hex(stream), feed=feed,
                  row_hashes=row_hashes, rows=rows, sum=state.hex(), digest=digest)  # fmt: skip


# Rows as PostgreSQL's COPY text writes them: tabs between columns, \N for NULL, escapes.
A = b"1\tAlice\t\\N\t2024-02-29 18:29:59.999999+00"
B = b"2\tBob\t\\\\x00ff\t1 year 2 mons 3 days 04:05:06.789"
C = b"3\tline\\nbreak and tab\\t\t-0\t{1,NULL}"


def _many(n: int) -> bytes:
    return b"".join(b"%d\trow %d\t%s\n" % (i, i % 7, b"\\N" if i % 3 else b"t") for i in range(n))


def rowset_vectors() -> list[Vector]:
    many = _many(300)
    moved = _lines(*sorted(many.split(b"\n")[:-1], key=lambda r: r[::-1]))
    assert moved != many  # noqa: S101 - the generator's own check
    return [
        _vector("empty", "no rows: the sum is 0, the count 0", b""),
        _vector("one_empty_row", "one row of no bytes (a table without columns has such rows)",
                b"\n", hashes=True),
        _vector("three_rows", "three rows; row_hashes gives each row's 256-byte value",
                _lines(A, B, C), hashes=True),
        _vector("three_rows_other_order", "the same rows in another order: the same digest",
                _lines(C, A, B)),
        _vector("three_rows_other_salt", "the same rows with another salt: another digest",
                _lines(A, B, C), salt=OTHER_SALT, hashes=True),
        _vector("one_value_changed", "one value of one row changed (Bob to Bea): another digest",
                _lines(A, B.replace(b"Bob", b"Bea"), C)),
        _vector("row_duplicated", "a row twice: four rows, another digest than three",
                _lines(A, B, C, A)),
        _vector("duplicate_for_another", "rows A, A, B: the same set as A, B, B, not the same "
                "multiset", _lines(A, A, B)),
        _vector("other_duplicate", "rows A, B, B", _lines(A, B, B)),
        _vector("same_row_twice", "one row twice: the sum is twice its value (a XOR would "
                "cancel it), the count 2", _lines(A, A), hashes=True),
        _vector("rows_300", "300 rows in key order", many),
        _vector("rows_300_moved", "the same 300 rows in another order (as after CLUSTER)", moved),
        _vector("fed_in_pieces", "three rows fed in pieces of 1, 5, 0 and 60 bytes and the rest: "
                "rows span pieces; a piece may hold no line feed", _lines(A, B, C),
                [1, 5, 0, 60, len(_lines(A, B, C)) - 66]),
        vector("partial_row_at_end", "the stream stops inside a row (no line feed after C): a "
               "digest MUST NOT be given", "format failure", ("PartialRow",), salt=SALT.hex(),
               input=data_hex(_lines(A, B) + C)),
        vector("no_line_feed_at_all", "one row without its line feed", "format failure",
               ("PartialRow",), salt=SALT.hex(), input=data_hex(A)),
    ]  # fmt: skip


def generate() -> dict[str, Any]:
    return vector_file(
        "rowset",
        "The multiset digest of the rows of a copy-text stream (protocol/POSTGRESQL.md 6.2). "
        "K = BLAKE3 derive_key of the salt with the context 'transferd 2026-11 copy-text row "
        "multiset v1'. A row is the bytes of one line without its 0x0A; its value is the first "
        "256 bytes of BLAKE3 keyed with K over the row, read little-endian; sum is the rows' "
        "values added modulo 2^2048, as 256 bytes little-endian; "
        "digest = BLAKE3(sum || rows as 8 bytes little-endian). Vectors with the same salt and "
        "the same rows in any order have the same digest. feed, when present, gives the sizes "
        "of the pieces the stream is fed in, which MUST NOT change the result. A stream that "
        "does not end with 0x0A (and is not empty) has no digest.",
        rowset_vectors(),
    )
