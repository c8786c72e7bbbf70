"""The Store contract (stores/base.py), run against every backend in tests/stores/backends.py.

Each test names the clause it checks. A backend passes when it behaves like the in-memory
reference driver in everything the contract says; what the contract leaves open (listing order)
is not tested here.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.stores.backends import StoreFactory, random_object, signed_manifest
from transferd.errors import (
    IntegrityError,
    ManifestExistsError,
    ObjectNotFoundError,
    PermanentStoreError,
)
from transferd.stores.base import HAVE_BATCH, Store

JOB = "snds-2026.dcir"


async def test_a_stored_object_reads_back_whole_and_is_listed(open_store: StoreFactory) -> None:
    name, data = random_object(100_000)
    async with open_store() as store:
        await store.put_object(JOB, name, data)

        assert await store.get_object(JOB, name) == data
        assert await store.has_objects(JOB, [name]) == {name}
        assert [entry async for entry in store.list_objects(JOB)] == [(name, len(data))]


async def test_an_object_that_does_not_hash_to_its_name_is_refused(
    open_store: StoreFactory,
) -> None:
    name, data = random_object(1000)
    async with open_store() as store:
        with pytest.raises(IntegrityError, match="does not hash to its name"):
            await store.put_object(JOB, name, data + b"x")

        assert await store.has_objects(JOB, [name]) == set()
        assert [entry async for entry in store.list_objects(JOB)] == []


async def test_putting_an_object_twice_is_a_no_op(open_store: StoreFactory) -> None:
    name, data = random_object(5000)
    async with open_store() as store:
        await store.put_object(JOB, name, data)
        await store.put_object(JOB, name, data)
        await asyncio.gather(*(store.put_object(JOB, name, data) for _ in range(6)))

        assert [entry async for entry in store.list_objects(JOB)] == [(name, 5000)]
        assert await store.get_object(JOB, name) == data


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [
        (0, 10, slice(0, 10)),
        (100, None, slice(100, None)),
        (990, 50, slice(990, 1000)),  # a length past the end is cut at the end
        (0, 1000, slice(0, 1000)),
        (1000, None, slice(0, 0)),  # at the end: nothing
        (5000, 3, slice(0, 0)),  # past the end: nothing
        (7, 0, slice(0, 0)),
    ],
)
async def test_reads_take_an_offset_and_a_length(
    open_store: StoreFactory, offset: int, length: int | None, expected: slice
) -> None:
    name, data = random_object(1000)
    async with open_store() as store:
        await store.put_object(JOB, name, data)

        assert await store.get_object(JOB, name, offset, length) == data[expected]


async def test_reading_a_missing_object_or_manifest_raises_not_found(
    open_store: StoreFactory,
) -> None:
    name, data = random_object(10)
    async with open_store() as store:
        with pytest.raises(ObjectNotFoundError):  # nothing stored for the job at all
            await store.get_object("no-such-job", name)
        await store.put_object(JOB, name, data)
        missing, _ = random_object(10)
        with pytest.raises(ObjectNotFoundError):
            await store.get_object(JOB, missing)
        with pytest.raises(ObjectNotFoundError):
            await store.get_object(JOB, missing, 0, 0)
        with pytest.raises(ObjectNotFoundError):
            await store.get_manifest(JOB, 1)
        with pytest.raises(ObjectNotFoundError):
            await store.get_manifest("no-such-job", 1)


async def test_has_objects_answers_for_batches_larger_than_one_request(
    open_store: StoreFactory,
) -> None:
    stored = [random_object(64) for _ in range(3)]
    absent = [random_object(8)[0] for _ in range(HAVE_BATCH * 2 + 5)]
    async with open_store() as store:
        for name, data in stored:
            await store.put_object(JOB, name, data)
        names = [n for n, _ in stored]
        asked = absent[:HAVE_BATCH] + names + absent[HAVE_BATCH:]

        assert await store.has_objects(JOB, asked) == set(names)
        assert await store.has_objects(JOB, []) == set()
        assert await store.has_objects("other-job", names) == set()


async def test_listing_gives_every_object_once_with_its_size(open_store: StoreFactory) -> None:
    objects = dict(random_object(size) for size in range(1, 40))
    async with open_store() as store:
        for name, data in objects.items():
            await store.put_object(JOB, name, data)

        listed = [entry async for entry in store.list_objects(JOB)]

        assert sorted(listed) == sorted((n, len(d)) for n, d in objects.items())
        assert [entry async for entry in store.list_objects("no-such-job")] == []


async def test_jobs_do_not_see_each_others_objects(open_store: StoreFactory) -> None:
    name, data = random_object(10)
    async with open_store() as store:
        await store.put_object("job-a", name, data)

        assert await store.has_objects("job-b", [name]) == set()
        with pytest.raises(ObjectNotFoundError):
            await store.get_object("job-b", name)
        assert [e async for e in store.list_objects("job-b")] == []


async def test_a_deleted_object_is_gone_and_deleting_twice_is_fine(
    open_store: StoreFactory,
) -> None:
    (name, data), (kept, kept_data) = random_object(10), random_object(20)
    async with open_store() as store:
        await store.put_object(JOB, name, data)
        await store.put_object(JOB, kept, kept_data)

        await store.delete_object(JOB, name)
        await store.delete_object(JOB, name)

        assert await store.has_objects(JOB, [name, kept]) == {kept}
        with pytest.raises(ObjectNotFoundError):
            await store.get_object(JOB, name)
        assert [e async for e in store.list_objects(JOB)] == [(kept, 20)]


async def test_manifests_read_back_and_list_in_ascending_order(open_store: StoreFactory) -> None:
    manifests = {seq: signed_manifest(JOB, seq) for seq in (3, 1, 2, 10)}
    async with open_store() as store:
        assert await store.list_manifests(JOB) == []
        for seq, data in manifests.items():
            await store.put_manifest(JOB, seq, data)

        assert await store.list_manifests(JOB) == [1, 2, 3, 10]
        for seq, data in manifests.items():
            assert await store.get_manifest(JOB, seq) == data


async def test_a_manifest_is_never_overwritten(open_store: StoreFactory) -> None:
    first = signed_manifest(JOB, 1)
    second = signed_manifest(JOB, 1, created="2026-11-22T21:00:01Z")
    async with open_store() as store:
        await store.put_manifest(JOB, 1, first)

        with pytest.raises(ManifestExistsError):
            await store.put_manifest(JOB, 1, first)
        with pytest.raises(ManifestExistsError):
            await store.put_manifest(JOB, 1, second)

        assert await store.get_manifest(JOB, 1) == first
        assert await store.list_manifests(JOB) == [1]


async def test_jobs_are_listed_once_anything_is_stored(open_store: StoreFactory) -> None:
    name, data = random_object(10)
    async with open_store() as store:
        assert await store.list_jobs() == []
        await store.put_object("job-b", name, data)
        await store.put_manifest("job-a", 1, signed_manifest("job-a", 1))

        assert await store.list_jobs() == ["job-a", "job-b"]


@pytest.mark.parametrize("job", ["", "../etc", "Job", "a/b", "-x", "x" * 65])
async def test_an_invalid_job_name_is_refused(open_store: StoreFactory, job: str) -> None:
    name, data = random_object(10)
    async with open_store() as store:
        with pytest.raises(PermanentStoreError, match="job name"):
            await store.put_object(job, name, data)


async def test_an_object_of_several_megabytes_round_trips(open_store: StoreFactory) -> None:
    name, data = random_object(5 * 1024 * 1024 + 17)
    async with open_store() as store:
        await store.put_object(JOB, name, data)

        assert await store.get_object(JOB, name) == data
        assert await store.get_object(JOB, name, 4 * 1024 * 1024, 100) == data[4194304:4194404]


async def test_every_backend_satisfies_the_protocol(open_store: StoreFactory) -> None:
    async with open_store() as store:
        assert isinstance(store, Store)
        assert store.description
