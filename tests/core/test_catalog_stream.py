"""A catalog checked as a whole: each record's members, their order, streams and totals."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given

from tests.core.strategies import SETTINGS, records
from transferd.core.catalog import ChunkRef
from transferd.core.catalog_stream import CatalogChecker, Head, check_record
from transferd.errors import FormatError, IntegrityError

SOURCE = {"t": "source", "kind": "directory", "root": "/r", "inode": 7}
AZURE = {"t": "source", "kind": "azure-blob", "account": "a", "container": "c", "prefix": ""}
PG = {"t": "source", "kind": "postgresql", "database": "snds"}
HASH = "0" * 64
MD5 = "1B2M2Y8AsgTpgAmY7PhCfg=="
MAPPED = ".transferd-blob-names/" + "ab" * 32


def ref(plain_len: int) -> list[Any]:
    return ChunkRef(0, 5, plain_len + 41, plain_len, bytes(32)).to_json()


def d(path: str, **extra: Any) -> dict[str, Any]:
    return {"t": "dir", "path": path, "mode": 0o755, "mtime_ns": -1} | extra


def f(path: str, **extra: Any) -> dict[str, Any]:
    return {"t": "file", "path": path, "mode": 0o644, "mtime_ns": 1} | extra


def blob(path: str, **extra: Any) -> dict[str, Any]:
    return f(path, etag="0x1", content_md5=MD5, md5_checked=True) | extra


def table(**extra: Any) -> dict[str, Any]:
    return {"t": "table", "path": "tables/s/t", "schema": "s", "name": "t", "format": "copy-text",
            "encoding": "UTF8", "columns": [["id", "int"]]} | extra  # fmt: skip


def chunks(*sizes: int) -> dict[str, Any]:
    return {"t": "chunks", "c": [ref(s) for s in sizes]}


def end(size: int, **extra: Any) -> dict[str, Any]:
    return {"t": "end", "size": size, "blake3": HASH} | extra


def totals(**counts: int) -> dict[str, Any]:
    zero = dict.fromkeys(("files", "dirs", "symlinks", "tables", "rows", "chunks", "bytes"), 0)
    return {"t": "totals", **zero, **counts}


def walk(*recs: dict[str, Any]) -> CatalogChecker:
    checker = CatalogChecker()
    for record in recs:
        checker.feed(record)
    checker.finish()
    return checker


def test_a_whole_catalog_is_walked_and_counted() -> None:
    checker = CatalogChecker()
    assert checker.feed(SOURCE) is None
    head = checker.feed(d("a"))
    assert head == Head("dir", b"a", 0o755, -1)
    assert not head.is_stream
    assert isinstance(checker.feed(f("a/b")), Head)
    assert checker.stream is not None
    assert checker.feed(chunks(10, 20)) == [ChunkRef(0, 5, 51, 10, bytes(32)),
                                            ChunkRef(0, 5, 61, 20, bytes(32))]  # fmt: skip
    assert checker.stream_size == 30
    given_refs = [ChunkRef(0, 100, 42, 1, bytes(32))]
    assert checker.feed(chunks(1), given_refs) is given_refs  # parsed by the caller already
    assert checker.feed(end(31)) is None
    link = checker.feed({"t": "symlink", "path_b64": "/w==", "target": "a/b", "mtime_ns": 0})
    assert link == Head("symlink", b"\xff", None, 0, b"a/b")
    checker.feed(totals(files=1, dirs=1, symlinks=1, chunks=3, bytes=31))
    checker.finish()
    assert checker.source == SOURCE
    assert checker.counts["bytes"] == 31


@SETTINGS
@given(records())
def test_what_a_directory_source_writes_passes_record_by_record(
    recs: list[dict[str, Any]],
) -> None:
    for record in recs:
        check_record(record, "directory")


def test_tables_and_their_rows() -> None:
    checker = walk(PG, table(), chunks(5), end(5, rows=2), totals(tables=1, rows=2, chunks=1,
                                                                  bytes=5))  # fmt: skip
    assert checker.counts["rows"] == 2


def test_files_of_an_azure_blob_source_carry_the_blob_members() -> None:
    walk(AZURE, blob(MAPPED, blob_name="a//b"), end(0), blob("x", version_id="v1"), end(0),
         totals(files=2))  # fmt: skip


@pytest.mark.parametrize(
    ("record", "source_kind", "message"),
    [
        ({"t": "device"}, None, "unknown type 'device'"),
        ({"t": "source", "kind": "s3"}, None, "unknown kind 's3'"),
        (SOURCE | {"host": None}, None, "host is neither a string nor an integer"),
        (SOURCE | {"x": True}, None, "x is neither a string nor an integer"),
        (d("a", uid=0), None, r"missing \[\], unknown \['uid'\]"),
        ({"t": "file", "path": "f", "mode": 1}, None, r"missing \['mtime_ns'\]"),
        (d("a", path_b64="/w=="), None, "gives a name both as text and as base64"),
        (d("a", mode=0o10000), None, "has mode 4096, not permission bits"),
        (d("a", mode=-1), None, "has mode -1"),
        (d("a", mode=True), None, "has mode True"),
        (d("a", mtime_ns="1"), None, "modification time that is no integer"),
        (d("a", mtime_ns=False), None, "modification time that is no integer"),
        (d("../a"), None, "unsafe path"),
        ({"t": "symlink", "path": "l", "target": "", "mtime_ns": 0}, None, "empty target"),
        ({"t": "symlink", "path": "l", "target": "a\x00", "mtime_ns": 0}, None, "with NUL"),
        (end(-1), None, "size is not a non-negative integer"),
        (end(1, rows=-1), None, "rows is not a non-negative integer"),
        (end(1, blake3="AB" * 32), None, "blake3 is not 64 lower-case hex digits"),
        (end(1, blake3=7), None, "blake3 is not 64"),
        (end(1, md5=MD5), None, r"unknown \['md5'\]"),
        (totals(files=-1), None, "totals: files is not a non-negative integer"),
        (totals(entries=1), None, r"unknown \['entries'\]"),
        ({"t": "chunks", "c": [ref(1)], "n": 1}, None, r"unknown \['n'\]"),
        ({"t": "chunks", "c": [[0, 5, 41, 1, "ab" * 32]]}, None, "blob length 41"),
        (table(schema=1), None, "schema, name, format, encoding are text"),
        (table(columns=["id"]), None, "columns are \\[name, type\\] string pairs"),
        (table(columns={}), None, "columns are"),
        (table(columns=[["id", 1]]), None, "columns are"),
        (table(path="/t"), None, "unsafe path"),
        (blob("x"), "directory", r"unknown \['content_md5', 'etag', 'md5_checked'\]"),
        (f("x", etag="e"), "azure-blob", r"missing \['content_md5', 'md5_checked'\]"),
        (blob("x", etag=1), "azure-blob", "has a member of the wrong type"),
        (blob("x", version_id=1), "azure-blob", "has a member of the wrong type"),
        (blob("x", md5_checked=1), "azure-blob", "has a member of the wrong type"),
        (blob("x", content_md5="AAAA"), "azure-blob", "content_md5 is not 16 bytes"),
        (blob("x", content_md5="AAA"), "azure-blob", "content_md5 is not valid base64"),
        (blob("x", blob_name="x"), "azure-blob", "blob_name is given exactly for a mapped name"),
        (blob(MAPPED), "azure-blob", "blob_name is given exactly for a mapped name"),
    ],
)
def test_each_record_has_exactly_its_members(
    record: dict[str, Any], source_kind: str | None, message: str
) -> None:
    with pytest.raises(FormatError, match=message):
        check_record(record, source_kind)


@pytest.mark.parametrize(
    ("recs", "error", "message"),
    [
        ([d("a")], FormatError, "starts with a dir record, not its source"),
        ([SOURCE, SOURCE], FormatError, "record 1 is a second source record"),
        ([SOURCE, chunks(1)], FormatError, "chunks record outside a file or table"),
        ([SOURCE, d("a"), chunks(1)], FormatError, "chunks record outside a file or table"),
        ([SOURCE, end(0)], FormatError, "end record outside a file or table"),
        ([SOURCE, totals(), d("a")], FormatError, "record 2, a dir record, follows the totals"),
        ([SOURCE, d("a"), f("a"), end(0)], FormatError, "two records name a"),
        ([SOURCE, f("a"), end(0, rows=0)], FormatError, r"the end of file a has rows"),
        ([PG, table(), end(0)], FormatError, r"the end of table tables/s/t lacks its rows"),
        ([SOURCE, f("a"), chunks(3), end(4)], IntegrityError,
         "a is 4 bytes by its end record, 3 by its chunks"),
        ([SOURCE, f("a"), chunks(3), d("b")], IntegrityError,
         "a is cut short, a dir record comes before its end record"),
        ([SOURCE, f("a"), totals(files=1)], IntegrityError, "a totals record comes before"),
        ([SOURCE, f("a"), chunks(3)], IntegrityError, "ends inside a: its end record never"),
        ([SOURCE, d("a")], IntegrityError, "ends without its totals record"),
        ([], IntegrityError, "ends without its totals record"),
        ([SOURCE, d("a"), totals()], IntegrityError, r"dirs 0 \(the records hold 1\)"),
        ([SOURCE, f("a"), chunks(3), end(3), totals(files=1, chunks=1, bytes=4)],
         IntegrityError, r"bytes 4 \(the records hold 3\)"),
    ],
)  # fmt: skip
def test_order_streams_and_totals(
    recs: list[dict[str, Any]], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        walk(*recs)
    assert type(caught.value) is error
