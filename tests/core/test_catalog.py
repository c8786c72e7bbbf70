"""The catalog: records, names and paths, segments sealed and opened, any flipped bit detected."""

from __future__ import annotations

import json
from typing import Any

import nacl.bindings
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from tests.core.strategies import FEW, JOB_KEY, SETTINGS, fixed, flip, records, safe_paths
from transferd.core import canonical
from transferd.core.catalog import (
    CatalogWriter,
    ChunkRef,
    chunk_records,
    name_fields,
    name_from,
    open_segment,
    parse_records,
    record_chunks,
    safe_path,
    seal_segment,
)
from transferd.core.constants import CATALOG_CHUNKS_PER_RECORD, CATALOG_SEGMENT_MAX, CHUNK_MAX
from transferd.errors import AuthenticationError, FormatError, UnsupportedVersionError

KEY = JOB_KEY.catalog_key
LINES = (
    b'{"kind":"directory","root":"/r","t":"source"}\n'
    b'{"mode":493,"mtime_ns":1,"path":"a","t":"dir"}\n'
)
SEGMENT = seal_segment(KEY, 0, LINES, fixed("catalog nonce", 24))
TOO_BIG = CATALOG_SEGMENT_MAX + 1


def _write(recs: list[dict[str, Any]]) -> list[tuple[int, bytes]]:
    writer, out = CatalogWriter(), []
    for record in recs:
        full = writer.add(record)
        if full is not None:
            out.append(full)
    last = writer.finish()
    return out + ([last] if last else [])


@SETTINGS
@given(records(), st.integers(0, 2**32 - 1))
def test_records_round_trip_through_a_sealed_segment(
    recs: list[dict[str, Any]], index: int
) -> None:
    [(first, lines)] = _write(recs)
    assert first == 0
    segment = seal_segment(KEY, index, lines, fixed("n", 24))
    opened = open_segment(KEY, index, segment)
    assert opened == recs
    for record in opened:
        if record["t"] in ("dir", "file", "symlink"):
            assert safe_path(record) == name_from(record, "path")


@SETTINGS
@given(safe_paths)
def test_any_safe_path_survives_its_json_form(path: bytes) -> None:
    fields = name_fields("path", path)
    assert list(fields) == (["path"] if _utf8(path) else ["path_b64"])
    record = json.loads(canonical.dumps({"t": "dir", **fields}))
    assert safe_path(record) == path


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@SETTINGS
@given(st.integers(0, 2**40), st.integers(0, 2**40), st.integers(1, CHUNK_MAX),
       st.integers(42, CHUNK_MAX + 41), st.binary(min_size=32, max_size=32))  # fmt: skip
def test_chunk_refs_round_trip(
    pack: int, offset: int, plain_len: int, blob_len: int, cid: bytes
) -> None:
    ref = ChunkRef(pack, offset, min(blob_len, plain_len + 41), plain_len, cid)
    assert ChunkRef.from_json(json.loads(json.dumps(ref.to_json()))) == ref


def test_every_flipped_bit_of_a_segment_is_detected() -> None:
    for bit in range(len(SEGMENT) * 8):
        with pytest.raises((FormatError, AuthenticationError)) as caught:
            open_segment(KEY, 0, flip(SEGMENT, bit))
        at = bit // 8
        expected = FormatError if at < 4 else UnsupportedVersionError if at == 4 else None
        assert type(caught.value) is (expected or AuthenticationError)


def test_a_segment_is_bound_to_its_index() -> None:
    assert open_segment(KEY, 0, SEGMENT)[1]["path"] == "a"
    with pytest.raises(AuthenticationError, match="catalog segment 1 failed authentication"):
        open_segment(KEY, 1, SEGMENT)


def _sealed_payload(payload: bytes) -> bytes:
    nonce = fixed("p", 24)
    ad = b"transferd v1 catalog\x01" + bytes(4)
    return (
        b"TDCS\x01"
        + nonce
        + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(payload, ad, nonce, KEY)
    )


@pytest.mark.parametrize(
    ("segment", "error", "message"),
    [
        (SEGMENT[:44], FormatError, "not a transferd catalog segment \\(bad magic\\)"),
        (b"TDCX" + SEGMENT[4:], FormatError, "bad magic"),
        (SEGMENT[:4] + b"\x03" + SEGMENT[5:], UnsupportedVersionError, "version 3 in catalog"),
        (_sealed_payload(b"garbage"), FormatError, "catalog segment 0 is not a zstd frame"),
        (_sealed_payload(zstandard.ZstdCompressor(write_content_size=False).compress(LINES)),
         FormatError, "does not declare its size"),
        (_sealed_payload(zstandard.ZstdCompressor().compress(bytes(TOO_BIG))),
         FormatError, f"declares {TOO_BIG} bytes of records, above the limit"),
        (_sealed_payload(zstandard.ZstdCompressor().compress(LINES) + b"\x00"),
         FormatError, "is not one whole zstd frame"),
    ],
)  # fmt: skip
def test_malformed_segments_are_named(segment: bytes, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        open_segment(KEY, 0, segment)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (b'{"t":"dir"}', "does not end with a newline"),
        (b'{"t": "dir"}\n', "record 0 is not in canonical form"),
        (b"[1]\n", "record 0 has no known type"),
        (b'{"t":"device"}\n', "record 0 has no known type"),
        (b'{"a":1,"a":2,"t":"dir"}\n', "duplicate key 'a'"),
    ],
)
def test_malformed_records_are_named(lines: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_records(lines, "segment")
    with pytest.raises(FormatError, match="segment holds no record"):
        parse_records(b"", "segment")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"path": "../x"}, "unsafe path b'../x'"),
        ({"path": "/etc/passwd"}, "unsafe path"),
        ({"path": "a//b"}, "unsafe path"),
        ({"path": "a/./b"}, "unsafe path"),
        ({"path": "a/"}, "unsafe path"),
        ({"path": ""}, "unsafe path b''"),
        ({"path": "a\x00b"}, "unsafe path"),
        ({"path_b64": "Ly9ldGM="}, "path_b64 holds a UTF-8 name, which must be written as path"),
        ({"path_b64": "L/8="}, "unsafe path b'/\\\\xff'"),
        ({"path": "a", "path_b64": "/w=="}, "record has both path and path_b64"),
        ({"path": 7}, "path must be a string"),
        ({"path_b64": "YWI"}, "path_b64 is not valid base64"),
        ({}, "record lacks path"),
    ],
)
def test_unsafe_or_missing_paths_are_refused(record: dict[str, Any], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        safe_path({"t": "dir", **record})


def test_non_utf8_names_use_base64() -> None:
    assert name_fields("target", b"caf\xe9") == {"target_b64": "Y2Fm6Q=="}
    assert name_fields("target", "café".encode()) == {"target": "café"}
    assert name_from({"target_b64": "Y2Fm6Q=="}, "target") == b"caf\xe9"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ([0, 5, 41, 1], "must be \\[pack, offset, blob_len, plain_len, id\\]"),
        ("x", "must be \\[pack, offset"),
        ([0, -1, 41, 1, "ab" * 32], "non-negative integers"),
        ([True, 5, 41, 1, "ab" * 32], "non-negative integers"),
        ([0, 5, 41, 0, "ab" * 32], "plain length 0, out of bounds"),
        ([0, 5, 41, CHUNK_MAX + 1, "ab" * 32], "plain length 4194305, out of bounds"),
        ([0, 5, 41, 1, "ab" * 32], "blob length 41, impossible for plain length 1 \\(42 to 42"),
        ([0, 5, 142, 100, "ab" * 32], "blob length 142, impossible for plain length 100"),
        ([0, 5, 42, 1, "AB" * 32], "64 lowercase hex digits"),
        ([0, 5, 42, 1, 7], "64 lowercase hex digits"),
        ([0, 5, 42, 1, "zz" * 32], "chunk id is not hex"),
    ],
)
def test_chunk_references_are_strict(ref: object, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        ChunkRef.from_json(ref)


def test_chunks_records_hold_at_most_4096_references() -> None:
    refs = [ChunkRef(0, 5, 42, 1, bytes(32))] * (CATALOG_CHUNKS_PER_RECORD + 1)
    split = list(chunk_records(refs))
    assert [len(r["c"]) for r in split] == [CATALOG_CHUNKS_PER_RECORD, 1]
    assert record_chunks(split[1]) == refs[:1]
    for bad in ({"c": [r.to_json() for r in refs]}, {"c": []}, {}):
        with pytest.raises(FormatError, match="a list of 1 to 4096 references"):
            record_chunks({"t": "chunks", **bad})


@FEW
@given(st.integers(1, 3))
def test_the_writer_cuts_segments_at_the_limit(count: int) -> None:
    big = {"t": "end", "size": 0, "blake3": "x" * (1024 * 1024)}
    segments = _write([big] * (4 * count))
    line = len(canonical.dumps(big)) + 1
    assert [i for i, _ in segments] == list(range(len(segments)))
    assert all(len(data) <= CATALOG_SEGMENT_MAX for _, data in segments)
    assert sum(len(data) for _, data in segments) == 4 * count * line
    assert len(segments) == 4 * count // 3 + (1 if 4 * count % 3 else 0)


def test_the_writer_refuses_unknown_records_and_may_hold_nothing() -> None:
    writer = CatalogWriter()
    with pytest.raises(ValueError, match="unknown record type 'device'"):
        writer.add({"t": "device"})
    with pytest.raises(ValueError, match="a source record of 4194305 bytes exceeds a segment"):
        writer.add({"t": "source", "kind": "x" * (CATALOG_SEGMENT_MAX + 1 - 25)})
    assert writer.finish() is None
