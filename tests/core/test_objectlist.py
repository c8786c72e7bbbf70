"""Object lists: round trips; a flipped bit is caught by the name, and by the parser if structural
(SPEC 9, 14)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.strategies import SETTINGS, fixed, flip, object_refs
from transferd.core.constants import OBJECT_LIST_MAX_ENTRIES
from transferd.core.objectlist import ObjectRef, decode_segment, encode_segment, segments
from transferd.core.packs import object_name
from transferd.errors import FormatError, UnsupportedVersionError

REFS = [ObjectRef(fixed(f"pack {i}"), 16_000_000 + i) for i in range(3)]
SEGMENT = encode_segment(REFS)
NAME = object_name(SEGMENT)


@SETTINGS
@given(object_refs())
def test_encode_then_decode_round_trips(refs: list[ObjectRef]) -> None:
    segment = encode_segment(refs)
    assert len(segment) == 9 + 40 * len(refs)
    assert decode_segment(segment) == refs
    assert decode_segment(memoryview(segment)) == refs
    assert [ObjectRef.from_json(r.to_json(), "x") for r in refs] == refs


@SETTINGS
@given(st.integers(0, len(SEGMENT) * 8 - 1))
def test_a_flipped_bit_is_caught_by_the_name_and_structural_ones_by_the_parser(bit: int) -> None:
    flipped = flip(SEGMENT, bit)
    assert object_name(flipped) != NAME  # what a verifier without the key checks first
    if bit < 9 * 8:  # magic, version, count: the segment no longer parses
        with pytest.raises(FormatError):
            decode_segment(flipped)
    else:  # an entry: it parses, to other values, and only the name tells
        assert decode_segment(flipped) != REFS


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"TDOL\x01\x00\x00", FormatError, "not a transferd object list \\(bad magic\\)"),
        (b"TDOX" + SEGMENT[4:], FormatError, "bad magic"),
        (SEGMENT[:4] + b"\x02" + SEGMENT[5:], UnsupportedVersionError, "version 2 in object list"),
        (SEGMENT[:5] + struct.pack(">I", 65537), FormatError, "claims 65537 entries, not 1 to"),
        (SEGMENT[:5] + struct.pack(">I", 0), FormatError, "claims 0 entries, not 1 to 65536"),
        (
            SEGMENT[:5] + struct.pack(">I", 4) + SEGMENT[9:] + SEGMENT[9:49],
            FormatError,
            "names a pack twice",
        ),
        (SEGMENT[:-1], FormatError, "length does not match its entry count"),
        (SEGMENT + bytes(40), FormatError, "length does not match its entry count"),
    ],
)
def test_malformed_segments_are_named(data: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        decode_segment(data)
    assert error in (FormatError, UnsupportedVersionError)


def test_a_segment_holds_1_to_65536_packs_each_once() -> None:
    refs = [ObjectRef(i.to_bytes(32, "big"), 0) for i in range(OBJECT_LIST_MAX_ENTRIES + 1)]
    with pytest.raises(ValueError, match="holds 1 to 65536 packs, not 65537"):
        encode_segment(refs)
    with pytest.raises(ValueError, match="holds 1 to 65536 packs, not 0"):
        encode_segment([])
    with pytest.raises(ValueError, match="names a pack twice"):
        encode_segment(refs[:1] * 2)
    assert [len(s) for s in segments(refs)] == [OBJECT_LIST_MAX_ENTRIES, 1]
    assert list(segments([])) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"sha256": "ab" * 32}, "must have exactly sha256 and size"),
        ("x", "must have exactly sha256 and size"),
        ({"sha256": "AB" * 32, "size": 1}, "sha256 must be 64 lowercase hex digits"),
        ({"sha256": 5, "size": 1}, "sha256 must be 64 lowercase hex digits"),
        ({"sha256": "ab" * 31, "size": 1}, "sha256 must be 64 lowercase hex digits"),
        ({"sha256": "zz" * 32, "size": 1}, "sha256 is not hex"),
        ({"sha256": "ab" * 32, "size": -1}, "size must be a non-negative integer"),
        ({"sha256": "ab" * 32, "size": True}, "size must be a non-negative integer"),
        ({"sha256": "ab" * 32, "size": "1"}, "size must be a non-negative integer"),
    ],
)
def test_object_refs_in_json_are_strict(value: object, message: str) -> None:
    with pytest.raises(FormatError, match=f"pack {message}"):
        ObjectRef.from_json(value, "pack")


def test_ref_name_is_hex() -> None:
    assert REFS[0].name == fixed("pack 0").hex()
    assert REFS[0].to_json() == {"sha256": REFS[0].name, "size": 16_000_000}
