"""The catalog walker: the events a reader gets, and the core's refusals reaching it unchanged.

Every check is core.catalog_stream's (tests/core/test_catalog_stream.py and the catalog_stream
vectors cover them one by one); here, that the walker makes them before any event, with their
error classes.
"""

from __future__ import annotations

from typing import Any

import pytest

from transferd.core.catalog import ChunkRef
from transferd.core.catalog_walk import Chunks, End, Entry, Walker
from transferd.errors import FormatError, IntegrityError

SOURCE = {"t": "source", "kind": "directory"}
HASH = "0" * 64
REF = ChunkRef(0, 5, 51, 10, bytes(32)).to_json()
TOTALS = {"t": "totals", "files": 0, "dirs": 0, "symlinks": 0, "tables": 0, "rows": 0,
          "chunks": 0, "bytes": 0}  # fmt: skip


def d(path: str, **extra: Any) -> dict[str, Any]:
    return {"t": "dir", "path": path, "mode": 0o755, "mtime_ns": 1} | extra


def f(path: str) -> dict[str, Any]:
    return {"t": "file", "path": path, "mode": 0o644, "mtime_ns": 2}


def walk(*records: dict[str, Any]) -> tuple[Walker, list[object]]:
    walker = Walker()
    events: list[object] = []
    for record in records:
        events += walker.feed(record)
    walker.finish()
    return walker, events


def test_entries_chunks_and_ends_in_order() -> None:
    parsed = [ChunkRef(0, 5, 51, 10, bytes(32))]
    walker = Walker()
    events: list[object] = []
    for record, refs in [
        (SOURCE, None),
        (d("d"), None),
        (f("d/f"), None),
        ({"t": "chunks", "c": [REF, REF]}, None),
        ({"t": "chunks", "c": [REF]}, parsed),
        ({"t": "end", "size": 30, "blake3": HASH}, None),
        ({"t": "symlink", "path_b64": "/w==", "target": "d/f", "mtime_ns": 3}, None),
        (TOTALS | {"files": 1, "dirs": 1, "symlinks": 1, "bytes": 30, "chunks": 3}, None),
    ]:
        events += walker.feed(record, refs)
    walker.finish()
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Entry", "Entry", "Chunks", "Chunks", "End", "Entry"]
    second = events[3]
    assert isinstance(second, Chunks)
    assert second.offset == 20
    assert second.refs is parsed
    end = events[4]
    assert isinstance(end, End)
    assert end.size == 30
    assert end.entry == events[1]
    link = events[5]
    assert isinstance(link, Entry)
    assert link.path == b"\xff"
    assert link.target == b"d/f"
    assert walker.source == SOURCE
    assert walker.totals is not None
    assert vars(walker.counts) == {"entries": 3, "files": 1, "streams": 1, "bytes": 30,
                                   "chunks": 3}  # fmt: skip


def test_a_table_is_a_stream_with_rows() -> None:
    table = {"t": "table", "path": "tables/s/t", "schema": "s", "name": "t",
             "format": "copy-text", "encoding": "UTF8", "columns": [["a", "int"]]}  # fmt: skip
    _, events = walk({"t": "source", "kind": "postgresql"}, table, {"t": "chunks", "c": [REF]},
                     {"t": "end", "size": 10, "blake3": HASH, "rows": 1},
                     TOTALS | {"tables": 1, "rows": 1, "chunks": 1, "bytes": 10})  # fmt: skip
    head, end = events[0], events[2]
    assert isinstance(head, Entry)
    assert head.is_stream
    assert head.record["schema"] == "s"
    assert isinstance(end, End)
    assert end.record["rows"] == 1


@pytest.mark.parametrize(
    ("records", "error", "message"),
    [
        ([d("d")], FormatError, "starts with a dir record, not its source"),
        ([SOURCE, SOURCE], FormatError, "second source record"),
        ([SOURCE, {"t": "chunks", "c": [REF]}], FormatError, "chunks record outside a file"),
        ([SOURCE, {"t": "end", "size": 0, "blake3": HASH}], FormatError, "end record outside"),
        ([SOURCE, TOTALS, d("d")], FormatError, "follows the totals"),
        ([SOURCE, d("d", mode=0o10000)], FormatError, "not permission bits"),
        ([SOURCE, d("../d")], FormatError, "unsafe path"),
        ([SOURCE, d("d"), d("d")], FormatError, "two records name d"),
        ([SOURCE, d("d", uid=0)], FormatError, r"unknown \['uid'\]"),
        ([SOURCE, f("f"), d("d")], IntegrityError, "f is cut short"),
        ([SOURCE, f("f")], IntegrityError, "catalog ends inside f"),
        ([SOURCE, d("d")], IntegrityError, "ends without its totals record"),
        ([], IntegrityError, "ends without its totals record"),
        ([SOURCE, d("d"), TOTALS], IntegrityError, r"dirs 0 \(the records hold 1\)"),
        ([SOURCE, f("f"), {"t": "chunks", "c": [REF]}, {"t": "end", "size": 11, "blake3": HASH}],
         IntegrityError, "f is 11 bytes by its end record, 10 by its chunks"),
    ],
)  # fmt: skip
def test_refused_sequences(
    records: list[dict[str, Any]], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        walk(*records)
    assert type(caught.value) is error
