"""Content-defined chunking: a stream fed in any pieces is cut as the whole stream."""

from __future__ import annotations

import blake3
from hypothesis import given
from hypothesis import strategies as st

from tests.core.strategies import FEW, JOB_KEY
from transferd.core.chunking import Chunker, chunk_id, content_hasher, cut
from transferd.core.constants import CHUNK_MAX, CHUNK_MIN

# Random bytes cut near the 1 MiB average, and zeros, where only the forced cut at MAX applies.
RANDOM = blake3.blake3(b"core chunking tests").digest(length=7 * 1024 * 1024)
STREAMS = {"random": RANDOM, "zeros": bytes(9 * 1024 * 1024)}
WHOLE = {name: [bytes(c) for c in cut(data)] for name, data in STREAMS.items()}


def _fed(data: bytes, sizes: list[int]) -> tuple[list[bytes], list[int]]:
    """The chunks a Chunker emits for ``data`` fed in ``sizes`` pieces, and its offsets."""
    chunker, out, offsets, at = Chunker(), [], [], 0
    for size in sizes:
        out += [bytes(c) for c in chunker.feed(memoryview(data)[at : at + size])]
        offsets.append(chunker.offset)
        at += size
    out += [bytes(c) for c in chunker.finish()]
    assert chunker.offset == len(data)
    return out, offsets


@FEW
@given(st.sampled_from(sorted(STREAMS)), st.data())
def test_fed_in_random_pieces_cuts_as_whole(name: str, data: st.DataObject) -> None:
    stream = STREAMS[name]
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12).map(sorted))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    chunks, offsets = _fed(stream, sizes)
    assert chunks == WHOLE[name]
    # after each piece, offset is where the next chunk starts: the end of an emitted chunk
    ends = {0, *(sum(map(len, chunks[: i + 1])) for i in range(len(chunks)))}
    assert set(offsets) <= ends
    assert offsets == sorted(offsets)


@FEW
@given(st.integers(0, 3 * CHUNK_MIN), st.integers(4096, 100_000))
def test_prefixes_fed_in_equal_pieces_cut_as_whole(length: int, piece: int) -> None:
    """Pieces of at least 4 KiB: each feed re-cuts the carried bytes, so 1-byte pieces of a
    megabyte would take minutes (the pipeline feeds reads of 64 KiB and more)."""
    stream = RANDOM[:length]
    sizes = [min(piece, length - at) for at in range(0, length, piece)]
    assert _fed(stream, sizes)[0] == [bytes(c) for c in cut(stream)]


def test_cut_sizes_respect_the_bounds() -> None:
    for chunks in WHOLE.values():
        assert all(CHUNK_MIN <= len(c) <= CHUNK_MAX for c in chunks[:-1])
    assert [len(c) for c in WHOLE["zeros"]] == [CHUNK_MAX, CHUNK_MAX, 1024 * 1024]


def test_empty_stream_and_empty_pieces_give_no_chunks() -> None:
    chunker = Chunker()
    assert chunker.feed(b"") == []
    assert chunker.finish() == []
    assert list(cut(b"")) == []
    assert chunker.offset == 0


def test_chunk_ids_are_keyed_and_stream_hashes_plain() -> None:
    assert (
        chunk_id(JOB_KEY.chunk_id_key, b"x")
        == blake3.blake3(b"x", key=JOB_KEY.chunk_id_key).digest()
    )
    assert chunk_id(JOB_KEY.chunk_id_key, b"x") != chunk_id(bytes(32), b"x")
    hasher = content_hasher()
    hasher.update(b"x")
    assert hasher.digest() == blake3.blake3(b"x").digest()
