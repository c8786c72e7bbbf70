"""The catalog walker: the record sequences a reader accepts and the ones it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from transferd.core.catalog import ChunkRef
from transferd.errors import FormatError
from transferd.jobs.entries import Chunks, End, Entry, Walker

SOURCE = {"t": "source", "kind": "directory"}
HASH = "0" * 64
REF = ChunkRef(0, 5, 51, 10, bytes(32)).to_json()


def walk(*records: dict[str, Any]) -> tuple[Walker, list[object]]:
    walker = Walker()
    events: list[object] = []
    for record in records:
        events += walker.feed(record)
    walker.finish()
    return walker, events


def test_entries_chunks_and_ends_in_order() -> None:
    walker, events = walk(
        SOURCE,
        {"t": "dir", "path": "d", "mode": 0o755, "mtime_ns": 1},
        {"t": "file", "path": "d/f", "mode": 0o644},
        {"t": "chunks", "c": [REF, REF]},
        {"t": "chunks", "c": [REF]},
        {"t": "end", "size": 30, "blake3": HASH},
        {"t": "symlink", "path_b64": "/w==", "target": "d/f"},
        {"t": "totals", "entries": 3, "files": 1, "streams": 1, "bytes": 30, "chunks": 3},
    )
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Entry", "Entry", "Chunks", "Chunks", "End", "Entry"]
    second = events[3]
    assert isinstance(second, Chunks)
    assert second.offset == 20
    end = events[4]
    assert isinstance(end, End)
    assert end.size == 30
    link = events[5]
    assert isinstance(link, Entry)
    assert link.path == b"\xff"
    assert link.target == b"d/f"
    assert walker.source == SOURCE


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"t": "dir", "path": "d"}], "does not start with its source"),
        ([SOURCE, SOURCE], "second source record"),
        ([SOURCE, {"t": "chunks", "c": [REF]}], "outside a file"),
        ([SOURCE, {"t": "end", "size": 0, "blake3": HASH}], "end record outside"),
        ([SOURCE, {"t": "file", "path": "f"}, {"t": "dir", "path": "d"}], "f has no end record"),
        ([SOURCE, {"t": "file", "path": "f"}], "catalog ends inside f"),
        ([SOURCE, {"t": "totals"}, {"t": "dir", "path": "d"}], "after its totals"),
        ([SOURCE, {"t": "dir", "path": "d"}], "no totals record"),
        ([SOURCE, {"t": "dir", "path": "d"}, {"t": "totals", "entries": 2}], "say 2 entries"),
        ([SOURCE, {"t": "dir", "path": "d", "mode": 0o10000}, {"t": "totals"}], "invalid mode"),
        ([SOURCE, {"t": "dir", "path": "d", "mtime_ns": "1"}, {"t": "totals"}], "invalid mtime"),
        ([SOURCE, {"t": "symlink", "path": "l", "target": ""}, {"t": "totals"}], "empty"),
        ([SOURCE, {"t": "symlink", "path": "l"}, {"t": "totals"}], "lacks target"),
        ([SOURCE, {"t": "dir", "path": "../d"}, {"t": "totals"}], "unsafe path"),
        (
            [SOURCE, {"t": "file", "path": "f"}, {"t": "chunks", "c": [REF]},
             {"t": "end", "size": 11, "blake3": HASH}],
            "is 11 bytes but its chunks hold 10",
        ),
        (
            [SOURCE, {"t": "file", "path": "f"}, {"t": "end", "size": 0, "blake3": "x"}],
            "invalid BLAKE3",
        ),
        ([], "catalog is empty"),
    ],
)  # fmt: skip
def test_refused_sequences(records: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        walk(*records)
