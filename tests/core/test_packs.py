"""Packs: round trips, every bound of the trailer and header, and any flipped bit detected."""

from __future__ import annotations

import struct

import nacl.bindings
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.strategies import FEW, JOB_KEY, SETTINGS, fixed, flip
from transferd.core.constants import CHUNK_MAX, PACK_MAX_CHUNKS, PACK_MAX_SIZE, PACK_TARGET
from transferd.core.envelope import new_compressor, open_chunk, seal_chunk
from transferd.core.packs import (
    MAX_HEADER_BLOB,
    PackBuilder,
    PackEntry,
    check_blob_location,
    check_prefix,
    encode_header,
    header_length,
    object_name,
    open_header,
    parse_pack,
)
from transferd.errors import (
    AuthenticationError,
    FormatError,
    TransferdError,
    UnsupportedVersionError,
)

DETECTED = (FormatError, AuthenticationError)  # UnsupportedVersionError is a FormatError


def build(plaintexts: list[bytes], label: str = "pack") -> tuple[bytes, list[bytes]]:
    builder = PackBuilder()
    for i, plaintext in enumerate(plaintexts):
        cid, blob = seal_chunk(JOB_KEY, plaintext, fixed(f"{label} {i}", 24), new_compressor(1))
        builder.add(cid, blob, len(plaintext))
    return builder.finish(JOB_KEY.pack_header_key, fixed(f"{label} header", 24)), plaintexts


def read_all(pack: bytes) -> list[bytes]:
    """What a reader gets: every entry of the header, every chunk opened."""
    entries = parse_pack(JOB_KEY.pack_header_key, pack)
    return [
        open_chunk(JOB_KEY, e.chunk_id, pack[e.offset : e.offset + e.blob_len], e.plain_len)
        for e in entries
    ]


PACK, PLAINTEXTS = build([b"first chunk " * 20, fixed("second", 300), b"3"])


@FEW
@given(st.lists(st.binary(min_size=1, max_size=2000), min_size=1, max_size=12))
def test_build_then_parse_round_trips(plaintexts: list[bytes]) -> None:
    builder = PackBuilder()
    for i, plaintext in enumerate(plaintexts):
        cid, blob = seal_chunk(JOB_KEY, plaintext, fixed(f"n{i}", 24), new_compressor(1))
        entry = builder.add(cid, blob, len(plaintext))
        assert entry.offset == builder.size - len(blob)
    pack = builder.finish(JOB_KEY.pack_header_key, fixed("h", 24))
    assert parse_pack(JOB_KEY.pack_header_key, pack) == builder.entries
    assert read_all(pack) == plaintexts
    assert len(builder) == len(plaintexts)
    assert not builder.is_full()


@SETTINGS
@given(st.integers(0, len(PACK) * 8 - 1))
def test_a_flipped_bit_fails_the_header_or_the_chunk_it_lands_in(bit: int) -> None:
    with pytest.raises(DETECTED):
        read_all(flip(PACK, bit))


def test_every_flipped_bit_is_detected_and_by_the_right_layer() -> None:
    entries = parse_pack(JOB_KEY.pack_header_key, PACK)
    header_at = entries[-1].offset + entries[-1].blob_len
    for bit in range(len(PACK) * 8):
        at = bit // 8
        with pytest.raises(DETECTED) as caught:
            read_all(flip(PACK, bit))
        if at < 4:
            assert type(caught.value) is FormatError
        elif at == 4:
            assert type(caught.value) is UnsupportedVersionError
        elif at < header_at:  # inside a blob: the header opens, that chunk does not
            assert type(caught.value) is AuthenticationError
            assert "chunk" in str(caught.value)
        elif at < len(PACK) - 4:
            assert str(caught.value) == "pack header failed authentication"


def test_full_by_size_or_by_count() -> None:
    builder = PackBuilder()
    builder.add(bytes(32), bytes(PACK_TARGET - 1), 1)
    assert not builder.is_full()
    builder.add(bytes(32), bytes(1), 1)
    assert builder.is_full()
    many = PackBuilder()
    for _ in range(PACK_MAX_CHUNKS):
        many.add(bytes(32), b"", 1)
    assert many.is_full()


def test_prefix_checks() -> None:
    check_prefix(PACK)
    with pytest.raises(FormatError, match="bad magic"):
        check_prefix(b"TDP")
    with pytest.raises(FormatError, match="bad magic"):
        check_prefix(b"TDPX\x01")
    with pytest.raises(UnsupportedVersionError, match="unsupported format version 2 in pack"):
        check_prefix(b"TDPK\x02")


@pytest.mark.parametrize(
    ("tail", "size", "message"),
    [
        (b"\x00\x00", 100, "pack is truncated: no header length"),
        (struct.pack(">I", 83), 100, "pack header length 83 is out of bounds"),
        (struct.pack(">I", MAX_HEADER_BLOB + 1), 10**9, f"length {MAX_HEADER_BLOB + 1} is out"),
        (struct.pack(">I", 84), 92, "header longer than the pack"),
    ],
)
def test_header_length_bounds(tail: bytes, size: int, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        header_length(tail, size)
    assert header_length(struct.pack(">I", 84), 93) == 84


def _sealed_header(header: bytes) -> bytes:
    nonce = fixed("hn", 24)
    return nonce + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        header, b"transferd v1 pack header\x01", nonce, JOB_KEY.pack_header_key
    )


@pytest.mark.parametrize(
    ("header", "size", "message"),
    [
        (b"\x00\x00", 0, "pack header is truncated"),
        (struct.pack(">I", 2) + bytes(40), 0, "header of 44 bytes lists 2 entries"),
        (struct.pack(">I", PACK_MAX_CHUNKS + 1), 0, "header of 4 bytes lists 16385 entries"),
        (struct.pack(">I", 0), 0, "header of 4 bytes lists 0 entries"),
        (encode_header([PackEntry(bytes(32), 5, 41, 1)]), 0, "entry 0 has impossible sizes"),
        (encode_header([PackEntry(bytes(32), 5, 42, CHUNK_MAX + 1)]), 0, "impossible sizes"),
        (encode_header([PackEntry(bytes(32), 5, 42, 0)]), 0, "impossible sizes"),
        (encode_header([PackEntry(bytes(32), 5, 43, 1)]), 0, "impossible sizes"),
        (encode_header([PackEntry(bytes(32), 5, 42, 1)]), 1, "account for every byte"),
    ],
)
def test_header_contents_are_checked(header: bytes, size: int, message: str) -> None:
    blob = _sealed_header(header)
    with pytest.raises(FormatError, match=message):
        open_header(JOB_KEY.pack_header_key, blob, size or 5 + len(blob) + 4)


def test_a_blob_lies_between_the_prefix_and_the_smallest_header() -> None:
    check_blob_location(5, 107, 200)  # ends where 84 header bytes and the trailer begin
    for offset, blob_len in ((4, 42), (5, 108), (0, 1)):
        with pytest.raises(FormatError, match="are not among the blobs of a pack of 200 bytes"):
            check_blob_location(offset, blob_len, 200)


def test_a_header_sealed_with_another_key_fails() -> None:
    with pytest.raises(AuthenticationError, match="pack header failed authentication"):
        parse_pack(JOB_KEY.chunk_key, PACK)


def test_a_pack_holds_at_least_one_chunk() -> None:
    """SPEC 8: a sender MUST NOT write an empty pack, and a reader refuses one by its trailer."""
    with pytest.raises(ValueError, match="a pack holds at least one chunk"):
        PackBuilder().finish(JOB_KEY.pack_header_key, fixed("h", 24))
    empty = b"TDPK\x01" + (header := _sealed_header(struct.pack(">I", 0))) + struct.pack(">I", 44)
    assert len(header) == 44
    with pytest.raises(FormatError, match="pack header length 44 is out of bounds"):
        parse_pack(JOB_KEY.pack_header_key, empty)


def test_size_limit_and_names() -> None:
    with pytest.raises(FormatError, match="exceeds the 67108864-byte limit"):
        parse_pack(JOB_KEY.pack_header_key, memoryview(bytearray(PACK_MAX_SIZE + 1)))
    assert object_name(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_errors_are_transferd_errors() -> None:
    assert all(issubclass(e, TransferdError) for e in DETECTED)
