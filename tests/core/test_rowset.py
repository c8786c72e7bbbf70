"""core/rowset.py: the multiset digest of a copy-text stream's rows (POSTGRESQL.md §6.2)."""

from __future__ import annotations

import blake3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.strategies import SETTINGS
from transferd.core import rowset
from transferd.core.rowset import ROW_CONTEXT, ROW_HASH_SIZE, RowMultiset, row_hash
from transferd.errors import FormatError

ROWS = [b"1\tAlice\t\\N", b"2\tBob\t2024-02-29", b"3\t\\\\x00ff\tf", b"", b"4\t\t\\t"]


SALT = bytes(range(32))


def multiset_digest(data: bytes, salt: bytes = SALT) -> str:
    return rowset.multiset_digest(salt, data)


def stream(rows: list[bytes]) -> bytes:
    return b"".join(r + b"\n" for r in rows)


def by_definition(rows: list[bytes], salt: bytes = SALT) -> str:
    """The digest as POSTGRESQL.md §6.2 states it, written out without the module's shortcuts."""
    key = blake3.blake3(salt, derive_key_context=ROW_CONTEXT).digest()
    total = 0
    for row in rows:
        out = blake3.blake3(row, key=key).digest(length=256)
        total = (total + int.from_bytes(out, "little")) % 2**2048
    state = total.to_bytes(256, "little") + len(rows).to_bytes(8, "little")
    return blake3.blake3(state).hexdigest()


def test_it_is_the_definition() -> None:
    assert multiset_digest(stream(ROWS)) == by_definition(ROWS)
    key = blake3.blake3(SALT, derive_key_context=ROW_CONTEXT).digest()
    assert row_hash(SALT, b"x") == int.from_bytes(
        blake3.blake3(b"x", key=key).digest(ROW_HASH_SIZE), "little"
    )


def test_the_salt_changes_every_digest_and_must_be_32_bytes() -> None:
    other = bytes(32)
    assert multiset_digest(stream(ROWS), other) == by_definition(ROWS, other)
    assert multiset_digest(stream(ROWS), other) != multiset_digest(stream(ROWS))
    assert multiset_digest(b"\n", other) != multiset_digest(b"\n")
    for bad in (b"", bytes(31), bytes(33)):
        with pytest.raises(ValueError, match=f"salt is 32 bytes, not {len(bad)}"):
            RowMultiset(bad)


def test_empty_stream_and_empty_rows() -> None:
    assert multiset_digest(b"") == by_definition([])
    # a table without columns has rows that are empty lines: each counts
    assert multiset_digest(b"\n") == by_definition([b""])
    assert multiset_digest(b"\n\n") == by_definition([b"", b""])
    assert len({multiset_digest(b""), multiset_digest(b"\n"), multiset_digest(b"\n\n")}) == 3


def test_rows_are_counted() -> None:
    m = RowMultiset(SALT)
    m.update(stream(ROWS))
    assert m.rows == len(ROWS)
    assert m.pending == 0


@SETTINGS
@given(st.permutations(ROWS))
def test_any_order_gives_the_same_digest(rows: list[bytes]) -> None:
    assert multiset_digest(stream(rows)) == multiset_digest(stream(ROWS))


@pytest.mark.parametrize(
    "other",
    [
        [ROWS[0], b"2\tBob\t2024-03-01", *ROWS[2:]],  # one value of one row changed
        [*ROWS, b"5\tEve\t\\N"],  # a row added
        ROWS[1:],  # a row removed
        [*ROWS, ROWS[0]],  # a row duplicated
        [ROWS[0], *ROWS[:-1]],  # a duplicate swapped for another row: same set, same count
        [b"1\tAlice", b"\\N", *ROWS[1:]],  # a row cut in two where its tab was
        [*ROWS[:3], b"", b"", b"4\t\t\\t"],  # one more empty row
    ],
    ids=["changed", "added", "removed", "duplicated", "duplicate_for_another", "split", "empty"],
)
def test_a_different_multiset_gives_another_digest(other: list[bytes]) -> None:
    assert sorted(other) != sorted(ROWS)
    assert multiset_digest(stream(other)) != multiset_digest(stream(ROWS))


def test_pairs_that_cancel_in_a_narrow_sum_do_not_here() -> None:
    """Two copies of a row are not zero rows (a XOR of row hashes would say they are)."""
    assert multiset_digest(stream([b"a", b"a"])) != multiset_digest(b"")
    assert multiset_digest(stream([b"a", b"a", b"b"])) != multiset_digest(stream([b"b"]))


@SETTINGS
@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_block_boundaries_anywhere_give_the_same_digest(rows: list[bytes], cuts: list[int]) -> None:
    data = stream(rows)
    at = sorted({min(c, len(data)) for c in cuts})
    m = RowMultiset(SALT)
    for start, end in zip([0, *at], [*at, len(data)], strict=True):
        m.update(memoryview(data)[start:end])
    assert m.rows == len(rows)
    assert m.hexdigest() == by_definition(rows)


def test_a_long_row_fed_a_byte_at_a_time() -> None:
    row = bytes(range(256)).replace(b"\n", b"") * 40
    m = RowMultiset(SALT)
    for byte in stream([row, b"next"]):
        m.update(bytes([byte]))
    assert m.hexdigest() == by_definition([row, b"next"])


def test_a_stream_that_stops_inside_a_row_is_refused() -> None:
    m = RowMultiset(SALT)
    m.update(b"1\ta\n2\t")
    m.update(b"b")
    assert m.rows == 1
    assert m.pending == 3
    with pytest.raises(FormatError, match="ends inside a row: 3 bytes after the last line feed"):
        m.hexdigest()
    m.update(b"\n")
    assert m.hexdigest() == by_definition([b"1\ta", b"2\tb"])


def test_digest_can_be_taken_twice_and_feeding_goes_on() -> None:
    m = RowMultiset(SALT)
    m.update(stream(ROWS[:2]))
    first = m.hexdigest()
    assert m.hexdigest() == first == by_definition(ROWS[:2])
    m.update(stream(ROWS[2:]))
    assert m.digest().hex() == by_definition(ROWS)
