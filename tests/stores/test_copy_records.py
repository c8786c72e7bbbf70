"""Clause 7 of the Store contract, copy records, run against every backend like test_contract.py."""

from __future__ import annotations

import asyncio

import pytest

from tests.stores.backends import StoreFactory, random_object
from transferd.errors import ManifestExistsError, ObjectNotFoundError, PermanentStoreError
from transferd.stores.base import CopyStore, Store

COPY = "snds-2026"


def copy_store(store: Store) -> CopyStore:
    assert isinstance(store, CopyStore)
    return store


async def test_records_read_back_list_in_order_and_are_never_overwritten(
    open_store: StoreFactory,
) -> None:
    async with open_store() as opened:
        store = copy_store(opened)
        assert await store.list_copy_records(COPY, "manifests") == []
        for seq in (2, 1, 10):
            await store.put_copy_record(COPY, "manifests", seq, b"record %d" % seq)

        with pytest.raises(ManifestExistsError):
            await store.put_copy_record(COPY, "manifests", 2, b"another")

        assert await store.list_copy_records(COPY, "manifests") == [1, 2, 10]
        assert await store.get_copy_record(COPY, "manifests", 2) == b"record 2"


async def test_series_and_copies_are_separate_and_not_jobs(open_store: StoreFactory) -> None:
    async with open_store() as opened:
        store = copy_store(opened)
        await store.put_copy_record(COPY, "leases/dcir", 1, b"a1")
        await store.put_copy_record(COPY, "leases/pmsi", 1, b"b1")
        await store.put_copy_record("other", "leases/dcir", 5, b"c5")

        assert await store.list_copy_records(COPY, "leases/dcir") == [1]
        assert await store.list_copy_records(COPY, "manifests") == []
        assert await store.list_copy_records("other", "leases/dcir") == [5]
        assert await store.get_copy_record(COPY, "leases/pmsi", 1) == b"b1"
        assert await store.list_jobs() == []
        assert [e async for e in store.list_objects("dcir")] == []


async def test_a_missing_record_is_not_found_and_deleting_is_idempotent(
    open_store: StoreFactory,
) -> None:
    async with open_store() as opened:
        store = copy_store(opened)
        with pytest.raises(ObjectNotFoundError):
            await store.get_copy_record(COPY, "manifests", 1)
        await store.put_copy_record(COPY, "leases/dcir", 1, b"x")
        await store.put_copy_record(COPY, "leases/dcir", 2, b"y")

        await store.delete_copy_record(COPY, "leases/dcir", 1)
        await store.delete_copy_record(COPY, "leases/dcir", 1)

        assert await store.list_copy_records(COPY, "leases/dcir") == [2]
        with pytest.raises(ObjectNotFoundError):
            await store.get_copy_record(COPY, "leases/dcir", 1)


async def test_records_live_beside_jobs_without_touching_them(open_store: StoreFactory) -> None:
    name, data = random_object(100)
    async with open_store() as opened:
        store = copy_store(opened)
        await store.put_object("dcir", name, data)
        await store.put_copy_record(COPY, "leases/dcir", 1, b"lease")

        assert await store.list_jobs() == ["dcir"]
        assert [e async for e in store.list_objects("dcir")] == [(name, 100)]


async def test_concurrent_puts_of_one_record_store_exactly_one(open_store: StoreFactory) -> None:
    """The lease race: several agents claim the same record number at once."""
    async with open_store() as opened:
        store = copy_store(opened)
        results = await asyncio.gather(
            *(store.put_copy_record(COPY, "leases/dcir", 3, b"agent %d" % i) for i in range(4)),
            return_exceptions=True,
        )
        winners = [i for i, r in enumerate(results) if r is None]
        assert len(winners) == 1
        assert all(isinstance(r, ManifestExistsError) for r in results if r is not None)
        assert await store.get_copy_record(COPY, "leases/dcir", 3) == b"agent %d" % winners[0]


@pytest.mark.parametrize(
    ("copy", "series"),
    [("Bad", "manifests"), ("../x", "manifests"), (COPY, "leases"), (COPY, "leases/../x"),
     (COPY, "objects"), (COPY, "leases/Job")],
)  # fmt: skip
async def test_invalid_copy_names_and_series_are_refused(
    open_store: StoreFactory, copy: str, series: str
) -> None:
    async with open_store() as opened:
        store = copy_store(opened)
        with pytest.raises(PermanentStoreError):
            await store.put_copy_record(copy, series, 1, b"x")
