"""Pack ranges: coalesced over the chunks that come soon, cached, and checked against the list."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from transferd.core import objectlist
from transferd.core.catalog import ChunkRef
from transferd.core.objectlist import ObjectRef
from transferd.errors import FormatError, IntegrityError
from transferd.read.fetch import GAP, MAX_RANGE, PackIndex, PackReader, plan_range
from transferd.stores.memory import MemoryStore

JOB = "j"


def test_plan_grows_over_near_chunks_only() -> None:
    soon = [(5, 100), (100, 200), (200 + GAP, 300 + GAP), (400 + 3 * GAP, 500 + 3 * GAP)]
    assert plan_range(5, 100, soon) == (5, 300 + GAP)
    assert plan_range(200 + GAP, 300 + GAP, soon) == (5, 300 + GAP)  # backwards too
    assert plan_range(400 + 3 * GAP, 500 + 3 * GAP, soon) == (400 + 3 * GAP, 500 + 3 * GAP)
    far = [(5, 100), (MAX_RANGE, MAX_RANGE + 10)]
    assert plan_range(5, 100, far) == (5, 100)
    assert plan_range(MAX_RANGE, MAX_RANGE + 10, far) == (MAX_RANGE, MAX_RANGE + 10)


def test_plan_never_reaches_into_a_range_already_held() -> None:
    soon = [(5, 100), (100, 200), (200, 300), (300, 400)]
    assert plan_range(200, 300, soon, held=[(5, 200)]) == (200, 400)
    assert plan_range(100, 200, soon, held=[(300, 400)]) == (5, 300)


def test_a_pack_read_from_its_middle_first_is_still_fetched_once() -> None:
    """Packs need not follow the reading order (large files are packed beside the small files
    listed before them): the first chunk asked may lie mid-pack."""
    data = bytes(range(256)) * 64 + FAR_TAIL

    async def run() -> tuple[list[bytes], int, int]:
        store, index = await _store_with_pack(data)
        reader = PackReader(store, JOB, index)
        refs = [ChunkRef(0, off, 1000, 1, bytes(32)) for off in range(5, 15000, 1000)]
        soon = sorted((r.offset, r.offset + r.blob_len) for r in refs)
        order = refs[7:] + refs[:7]
        blobs = [bytes(await reader.blob(r, soon)) for r in order]
        return blobs, reader.requests, reader.bytes_fetched

    blobs, requests, fetched = asyncio.run(run())
    assert (requests, fetched) == (1, 15000)
    assert blobs[0] == data[7005:8005]
    assert blobs[-1] == data[6005:7005]


FAR_TAIL = bytes(2 * GAP)
"""Bytes after the chunks a test reads, so that they do not reach the pack's end: such a pack is
fetched by ranges, not whole (test_whole_pack.py)."""


async def _store_with_pack(data: bytes) -> tuple[MemoryStore, PackIndex]:
    store = MemoryStore()
    name = hashlib.sha256(data).hexdigest()
    await store.put_object(JOB, name, data)
    segment = objectlist.encode_segment([ObjectRef(bytes.fromhex(name), len(data))])
    seg_name = hashlib.sha256(segment).digest()
    await store.put_object(JOB, seg_name.hex(), segment)
    return store, PackIndex(store, JOB, [ObjectRef(seg_name, len(segment))])


def test_consecutive_chunks_share_one_request() -> None:
    data = bytes(range(256)) * 64 + FAR_TAIL

    async def run() -> tuple[list[bytes], int]:
        store, index = await _store_with_pack(data)
        reader = PackReader(store, JOB, index)
        refs = [ChunkRef(0, off, 1000, 1, bytes(32)) for off in range(5, 15000, 1000)]
        soon = [(r.offset, r.offset + r.blob_len) for r in refs]
        blobs = await asyncio.gather(*(reader.blob(r, soon) for r in refs))
        return [bytes(b) for b in blobs], reader.requests

    blobs, requests = asyncio.run(run())
    assert requests == 1
    assert blobs[3] == data[3005:4005]


def test_a_chunk_outside_the_blobs_of_its_pack_or_a_pack_beyond_the_list_is_refused() -> None:
    """SPEC 13.4: a blob lies after the pack's 5-byte prefix and before its smallest header blob
    and trailer (88 bytes), checked before anything is fetched."""

    async def run(ref: ChunkRef) -> bytes:
        store, index = await _store_with_pack(b"TDPK\x01" + b"x" * 191 + (84).to_bytes(4, "big"))
        return bytes(await PackReader(store, JOB, index).blob(ref))

    assert len(asyncio.run(run(ChunkRef(0, 5, 107, 66, bytes(32))))) == 107  # ends at 200 - 88
    for offset, blob_len in ((4, 42), (5, 108), (150, 60)):
        with pytest.raises(FormatError, match="are not among the blobs of a pack of 200 bytes"):
            asyncio.run(run(ChunkRef(0, offset, blob_len, 1, bytes(32))))
    with pytest.raises(FormatError, match="names pack 1, but the job has 1 packs"):
        asyncio.run(run(ChunkRef(1, 5, 10, 1, bytes(32))))


def test_an_object_list_that_does_not_match_the_manifest_is_refused() -> None:
    async def run() -> None:
        store, index = await _store_with_pack(b"x" * 100)
        name = next(n for n, d in store.objects[JOB].items() if d.startswith(b"TDOL"))
        damaged = bytearray(store.objects[JOB][name])
        damaged[-1] ^= 1
        store.objects[JOB][name] = bytes(damaged)
        await index.pack(0)

    with pytest.raises(IntegrityError, match=r"object list \w+ does not hash to its name"):
        asyncio.run(run())
