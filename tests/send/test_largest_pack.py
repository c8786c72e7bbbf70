"""The largest pack a sender may make (a PACK_TARGET_MAX target crossed by a maximal blob, with
the largest header) is accepted by every store a send writes to, the storage host included, and
stays within what readers accept (PACK_MAX_SIZE)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.stores.backends import BACKENDS, random_object
from transferd.core.constants import BLOB_OVERHEAD, CHUNK_MAX, PACK_MAX_SIZE, PACK_TARGET_MAX
from transferd.core.packs import MAX_HEADER_BLOB, PACK_PREFIX_SIZE

LARGEST = (
    PACK_PREFIX_SIZE + (PACK_TARGET_MAX - 1) + (CHUNK_MAX + BLOB_OVERHEAD) + MAX_HEADER_BLOB + 4
)


def test_the_largest_pack_is_within_what_readers_accept() -> None:
    assert LARGEST <= PACK_MAX_SIZE


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_store_takes_the_largest_pack(backend: str, tmp_path: Path) -> None:
    name, data = random_object(LARGEST)

    async def main() -> None:
        async with BACKENDS[backend](tmp_path) as store:
            await store.put_object("big", name, data)
            assert await store.has_objects("big", [name]) == {name}
            assert [entry async for entry in store.list_objects("big")] == [(name, LARGEST)]
            assert await store.get_object("big", name, LARGEST - 10, 10) == data[-10:]

    asyncio.run(main())
