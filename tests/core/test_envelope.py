"""Sealing and opening one chunk: round trips, and every check of SPEC 13.4 by its message."""

from __future__ import annotations

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from tests.core.strategies import JOB_KEY, OTHER_IDENTITY, SETTINGS, fixed, flip, nonces
from transferd.core import zstdframe
from transferd.core.chunking import chunk_id
from transferd.core.constants import CHUNK_MAX
from transferd.core.envelope import (
    BLOB_OVERHEAD,
    decode_payload,
    encode_payload,
    new_compressor,
    open_chunk,
    open_payload,
    seal,
    seal_chunk,
    seal_payload,
)
from transferd.core.jobkey import JobKey
from transferd.errors import AuthenticationError, FormatError, IntegrityError

TEXT = b"claim;patient;amount\n" * 40
CID = chunk_id(JOB_KEY.chunk_id_key, TEXT)
plaintexts = st.one_of(
    st.binary(min_size=1, max_size=3000),
    st.builds(lambda b, n: (b * n)[:5000], st.binary(min_size=1, max_size=20), st.integers(1, 500)),
)


@SETTINGS
@given(plaintexts, nonces, st.sampled_from([None, 1, 3, 19]))
def test_seal_then_open_round_trips(plaintext: bytes, nonce: bytes, level: int | None) -> None:
    compressor = None if level is None else new_compressor(level)
    cid, blob = seal_chunk(JOB_KEY, plaintext, nonce, compressor)
    assert cid == chunk_id(JOB_KEY.chunk_id_key, plaintext)
    assert blob[:24] == nonce
    assert open_chunk(JOB_KEY, cid, blob, len(plaintext)) == plaintext
    payload = open_payload(JOB_KEY.chunk_key, cid, blob)
    assert payload[0] in (0, 1)
    assert (payload[0] == 1) == (compressor is not None and len(payload) - 1 < len(plaintext))
    assert len(blob) <= len(plaintext) + BLOB_OVERHEAD


@SETTINGS
@given(plaintexts, nonces, st.sampled_from([None, 1, 3]), st.integers(0, 7))
def test_the_one_buffer_seal_gives_the_bytes_of_encode_then_seal(
    plaintext: bytes, nonce: bytes, level: int | None, skip: int
) -> None:
    compressor = None if level is None else new_compressor(level)
    view = memoryview(b"x" * skip + plaintext)[skip:]  # the pipeline passes views of a block
    expected = seal(JOB_KEY.chunk_key, CID, encode_payload(plaintext, compressor), nonce)
    assert seal_payload(JOB_KEY.chunk_key, CID, view, compressor, nonce) == expected


def test_the_one_buffer_seal_checks_nonce_and_id_sizes() -> None:
    with pytest.raises(ValueError, match="nonce must be 24 bytes"):
        seal_payload(JOB_KEY.chunk_key, CID, TEXT, None, bytes(23))
    with pytest.raises(ValueError, match="chunk id 32 bytes"):
        seal_payload(JOB_KEY.chunk_key, CID[:31], TEXT, None, bytes(24))


def test_zstd_only_when_smaller() -> None:
    assert encode_payload(TEXT, new_compressor(3))[0] == 1
    assert encode_payload(b"a", new_compressor(3)) == b"\x00a"
    assert encode_payload(TEXT, None) == b"\x00" + TEXT


def test_every_bit_of_a_blob_is_authenticated() -> None:
    _, blob = seal_chunk(JOB_KEY, TEXT, fixed("n", 24), new_compressor(3))
    for bit in range(len(blob) * 8):
        with pytest.raises(AuthenticationError, match="failed authentication"):
            open_chunk(JOB_KEY, CID, flip(blob, bit), len(TEXT))


def test_the_blob_is_bound_to_its_chunk_id_and_key() -> None:
    _, blob = seal_chunk(JOB_KEY, TEXT, fixed("n", 24), None)
    other_id = chunk_id(JOB_KEY.chunk_id_key, b"other")
    with pytest.raises(AuthenticationError, match=f"chunk {other_id.hex()[:16]} failed"):
        open_chunk(JOB_KEY, other_id, blob, len(TEXT))
    with pytest.raises(AuthenticationError):
        open_chunk(JobKey(OTHER_IDENTITY.secret), CID, blob, len(TEXT))


def test_seal_refuses_wrong_sizes() -> None:
    with pytest.raises(ValueError, match="nonce must be 24 bytes"):
        seal(JOB_KEY.chunk_key, CID, b"\x00x", bytes(23))
    with pytest.raises(ValueError, match="chunk id 32 bytes"):
        seal(JOB_KEY.chunk_key, CID[:31], b"\x00x", bytes(24))


@pytest.mark.parametrize(
    ("blob_len", "plain_len", "message"),
    [
        (41, 1, "is 41 bytes sealed, impossible for 1 bytes of plaintext \\(42 to 42\\)"),
        (43, 1, "is 43 bytes sealed, impossible for 1 bytes"),
        (42, 0, "claims 0 bytes, out of bounds"),
        (42, CHUNK_MAX + 1, "claims 4194305 bytes, out of bounds"),
    ],
)
def test_impossible_lengths_are_refused_before_decryption(
    blob_len: int, plain_len: int, message: str
) -> None:
    with pytest.raises(FormatError, match=message):
        open_chunk(JOB_KEY, CID, bytes(blob_len), plain_len)


def test_a_blob_shorter_than_its_overhead_is_refused_before_decryption() -> None:
    with pytest.raises(FormatError, match="is truncated: 40 bytes"):
        open_payload(JOB_KEY.chunk_key, CID, bytes(40))


def _sealed(payload: bytes, cid: bytes = CID) -> bytes:
    return seal(JOB_KEY.chunk_key, cid, payload, fixed("n", 24))


def _frame(data: bytes, **options: bool) -> bytes:
    return zstandard.ZstdCompressor(level=3, **options).compress(data)


SKIPPABLE = b"\x50\x2a\x4d\x18\x01\x00\x00\x00x"
"""A skippable frame of one byte (RFC 8878 3.1.2)."""


def _with_dictionary(frame: bytes) -> bytes:
    """``frame`` (single segment, no Dictionary_ID) with a 1-byte Dictionary_ID of 1 added."""
    assert frame[4] & 0x23 == 0x20
    return frame[:4] + bytes([frame[4] | 1, 1]) + frame[5:]


@pytest.mark.parametrize(
    ("payload", "plain_len", "message"),
    [
        (b"\x00" + TEXT, CHUNK_MAX + 1, "claims 4194305 bytes, out of bounds"),
        (b"\x00" + TEXT, -1, "claims -1 bytes"),
        (b"\x00", 0, "claims 0 bytes"),
        (b"", len(TEXT), "has an empty payload"),
        (b"\x00" + TEXT, len(TEXT) + 1, f"holds {len(TEXT)} bytes, expected {len(TEXT) + 1}"),
        (b"\x02" + TEXT, len(TEXT), "has unknown encoding 2"),
        (b"\x01not a frame", len(TEXT), "is not a zstd frame"),
        (b"\x01" + _frame(TEXT), len(TEXT) - 1, f"declares {len(TEXT)} bytes, expected"),
        (b"\x01" + _frame(TEXT, write_content_size=False), len(TEXT), "does not declare"),
        (b"\x01" + _frame(TEXT)[:-3], len(TEXT), "is not one whole zstd frame"),
        (b"\x01" + _frame(TEXT) + b"\x00", len(TEXT), "is not one whole zstd frame"),
        (b"\x01" + _frame(bytes(range(64))), 64, "not fewer than 64"),
        (b"\x01" + _frame(TEXT) + bytes(len(TEXT)), len(TEXT), f"not fewer than {len(TEXT)}"),
        (b"\x01" + SKIPPABLE + _frame(TEXT), len(TEXT), "is not a zstd frame"),
        (b"\x01" + _frame(TEXT)[:4], len(TEXT), "is not a zstd frame"),
        (b"\x01" + _with_dictionary(_frame(TEXT)), len(TEXT), "needs zstd dictionary 1"),
    ],
)
def test_payload_faults_are_format_failures(payload: bytes, plain_len: int, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        decode_payload(payload, plain_len, CID)
    if payload:  # and through the whole open: after the tag, unless the length gives it away
        possible = 1 <= plain_len <= CHUNK_MAX and len(payload) <= plain_len + 1
        with pytest.raises(FormatError, match=message if possible else "out of bounds|impossible"):
            open_chunk(JOB_KEY, CID, _sealed(payload), plain_len)


def test_a_plaintext_that_is_not_its_id_is_an_integrity_failure() -> None:
    with pytest.raises(IntegrityError, match="does not hash to its id"):
        open_chunk(JOB_KEY, CID, _sealed(b"\x00" + TEXT[::-1]), len(TEXT))


def test_a_short_inflation_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """libzstd itself refuses a frame shorter than its declared size; this guards a binding that
    would not."""

    class Short:
        def decompress(self, data: bytes, **options: object) -> bytes:
            return b"x"

    monkeypatch.setattr(zstdframe.zstandard, "ZstdDecompressor", Short)
    with pytest.raises(FormatError, match=f"inflates to 1 bytes, not the {len(TEXT)} it declares"):
        decode_payload(b"\x01" + _frame(TEXT), len(TEXT), CID)
