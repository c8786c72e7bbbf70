"""catalog_stream.json: a whole catalog's records, in order: the checks no single record shows.

Sealing and opening segments is catalog.json's; these vectors are the records of every segment of
one catalog, as JSON lines, so that a reader's order, stream and totals checks (SPEC 10.4, 13.3,
13.5) can be tested apart from the cryptography.
"""

from __future__ import annotations

from typing import Any

from common import Vector, det, vector, vector_file
from gen_catalog import MTIME, SOURCE, TREE, TREE_PATHS, _lines

PG_SOURCE = {"t": "source", "kind": "postgresql", "host": "db.example", "database": "snds",
             "snapshot": "00000003-0000001B-1"}  # fmt: skip
TABLE = {"t": "table", "path": "tables/public/er_prs_f", "schema": "public", "name": "er_prs_f",
         "format": "copy-text", "encoding": "UTF8",
         "columns": [["id", "bigint"], ["amount", "numeric(12,2)"]]}  # fmt: skip
TOTALS = {"t": "totals", "files": 0, "dirs": 0, "symlinks": 0, "tables": 0, "rows": 0,
          "chunks": 0, "bytes": 0}  # fmt: skip
HASH = det("catalog stream hash").hex()


def _ref(plain_len: int, n: int = 0) -> list[Any]:
    return [0, 5, plain_len + 41, plain_len, det(f"catalog stream chunk {n}").hex()]


def _file(path: str) -> dict[str, Any]:
    return {"t": "file", "path": path, "mode": 0o640, "mtime_ns": MTIME}


def _dir(path: str) -> dict[str, Any]:
    return {"t": "dir", "path": path, "mode": 0o750, "mtime_ns": MTIME}


def _symlink(path: str) -> dict[str, Any]:
    return {"t": "symlink", "path": path, "target": "/etc", "mtime_ns": MTIME}


def _chunks(*sizes: int) -> dict[str, Any]:
    return {"t": "chunks", "c": [_ref(s, n) for n, s in enumerate(sizes)]}


def _end(size: int, **extra: Any) -> dict[str, Any]:
    return {"t": "end", "size": size, "blake3": HASH} | extra


def _totals(**counts: int) -> dict[str, Any]:
    return TOTALS | counts


ONE_FILE = (_file("a.csv"), _chunks(100, 200), _end(300))
ONE_FILE_TOTALS = _totals(files=1, chunks=2, bytes=300)


def _stream(name: str, comment: str, *segments: tuple[dict[str, Any], ...],
            expect: str = "success", flags: tuple[str, ...] = (),
            paths: list[bytes] | None = None) -> Vector:  # fmt: skip
    return vector(name, comment, expect, flags,
                  segments=[_lines(*s).decode("ascii") for s in segments],
                  paths=None if paths is None else [p.hex() for p in paths])  # fmt: skip


def _invalid(name: str, comment: str, records: tuple[dict[str, Any], ...], expect: str,
             flags: tuple[str, ...] = ("Malformed",)) -> Vector:  # fmt: skip
    return _stream(name, comment, records, expect=expect, flags=flags)


def _wrong_total(member: str, correct: int) -> Vector:
    records = (SOURCE, *ONE_FILE, _dir("d"), _totals(dirs=1, files=1, chunks=2, bytes=300)
               | {member: correct + 1})  # fmt: skip
    return _invalid(f"totals_{member}_wrong", f"totals says {correct + 1} {member}, the records "
                    f"hold {correct}", records, "integrity failure", ("Bounds",))  # fmt: skip


def generate() -> dict[str, Any]:
    fmt, integrity = "format failure", "integrity failure"
    table_records = (PG_SOURCE, TABLE, _chunks(1000), _end(1000, rows=12),
                     _totals(tables=1, rows=12, chunks=1, bytes=1000))  # fmt: skip
    vectors = [
        _stream("tree_in_three_segments", "catalog.json's tree, cut into three segments, one "
                "inside the stream of its first file", TREE[:4], TREE[4:5], TREE[5:],
                flags=("Unicode",), paths=TREE_PATHS),
        _stream("nothing_copied", "a source, and totals of zero: a copy of an empty directory",
                (SOURCE, TOTALS), paths=[]),
        _stream("table_stream", "a table stream: its end has rows, which the totals sum",
                table_records, paths=[b"tables/public/er_prs_f"]),
        _invalid("missing_end", "a file's chunks, then a dir: the stream was cut short",
                 (SOURCE, *ONE_FILE[:2], _dir("d"), ONE_FILE_TOTALS | {"dirs": 1}), integrity,
                 ("Truncated",)),
        _invalid("missing_end_before_totals", "a file's chunks, then the totals",
                 (SOURCE, *ONE_FILE[:2], ONE_FILE_TOTALS), integrity, ("Truncated",)),
        _invalid("ends_inside_a_stream", "the records stop after a file's chunks",
                 (SOURCE, *ONE_FILE[:2]), integrity, ("Truncated",)),
        _invalid("missing_totals", "the records stop after a complete file: no totals",
                 (SOURCE, *ONE_FILE), integrity, ("Truncated",)),
        *(_wrong_total(m, c) for m, c in (("files", 1), ("dirs", 1), ("symlinks", 0),
                                          ("tables", 0), ("rows", 0), ("chunks", 2),
                                          ("bytes", 300))),
        _invalid("end_size_not_chunk_sum", "the chunks hold 300 bytes, the end record says 301",
                 (SOURCE, *ONE_FILE[:2], _end(301), ONE_FILE_TOTALS | {"bytes": 301}),
                 integrity, ("Bounds",)),
        _invalid("chunks_without_a_file", "a chunks record right after the source",
                 (SOURCE, _chunks(100), _totals(chunks=1)), fmt),
        _invalid("chunks_after_a_dir", "a chunks record after a dir, which has no content",
                 (SOURCE, _dir("d"), _chunks(100), _totals(dirs=1, chunks=1)), fmt),
        _invalid("end_without_a_file", "an end record with no stream open",
                 (SOURCE, _end(0), TOTALS), fmt),
        _invalid("record_after_totals", "a dir after the totals",
                 (SOURCE, TOTALS, _dir("d")), fmt),
        _invalid("source_not_first", "the catalog starts with a dir",
                 (_dir("d"), SOURCE, _totals(dirs=1)), fmt),
        _invalid("second_source", "a second source record", (SOURCE, SOURCE, TOTALS), fmt),
        _invalid("rows_after_a_file", "a file's end record with rows",
                 (SOURCE, *ONE_FILE[:2], _end(300, rows=1), ONE_FILE_TOTALS | {"rows": 1}), fmt),
        _invalid("table_end_without_rows", "a table's end record without rows",
                 (PG_SOURCE, TABLE, _chunks(1000), _end(1000),
                  _totals(tables=1, chunks=1, bytes=1000)), fmt),
        _invalid("path_twice", "a dir and a file with one path",
                 (SOURCE, _dir("a.csv"), *ONE_FILE, ONE_FILE_TOTALS | {"dirs": 1}), fmt,
                 ("PathTraversal",)),
        _invalid("paths_out_of_order", "a file a.csv after a dir d: entries must come in "
                 "strictly increasing byte order of their paths",
                 (SOURCE, _dir("d"), *ONE_FILE, ONE_FILE_TOTALS | {"dirs": 1}), fmt),
        _invalid("path_inside_a_symlink", "a file a/x after a symlink a: restoring it would "
                 "write through the link",
                 (SOURCE, _symlink("a"), _file("a/x"), _chunks(100), _end(100),
                  _totals(symlinks=1, files=1, chunks=1, bytes=100)), fmt, ("PathTraversal",)),
        _invalid("path_inside_a_file", "a dir a/d after a file a (a sibling a-b between "
                 "them), restoring it would write under a file",
                 (SOURCE, _file("a"), _chunks(100), _end(100), _dir("a-b"), _dir("a/d"),
                  _totals(files=1, dirs=2, chunks=1, bytes=100)), fmt, ("PathTraversal",)),
        _stream("siblings_of_a_symlink", "a symlink a, then a-b/c and a.d: names that start "
                "with the link's but are not under it", (SOURCE, _symlink("a"), _dir("a-b"),
                _dir("a-b/c"), _dir("a.d"), _totals(symlinks=1, dirs=3)),
                paths=[b"a", b"a-b", b"a-b/c", b"a.d"]),
        _invalid("paths_out_of_byte_order", "\"B\" (0x42) after \"a\" (0x61): the order is of "
                 "raw bytes, not of letters regardless of case",
                 (SOURCE, _dir("a"), _dir("B"), _totals(dirs=2)), fmt),
    ]  # fmt: skip
    return vector_file(
        "catalog_stream",
        "The records of every segment of one catalog, in order (segments: each segment's JSON "
        "lines). Apply: parse every line as catalog.json does, check each record, feed them in "
        "order to one checker of SPEC 10.4 (source first, then dir, symlink or a file or table "
        "followed by its chunks and end, then totals last) and, after the last, require the "
        "totals and check them against the records. A stream cut short or totals that differ are "
        "integrity failures; records out of order, format failures.",
        vectors,
    )
