"""What LocalStore promises beyond the contract: layout, modes, write order, leftovers, ENOSPC."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stores.backends import SMALL_FS_SIZE, random_object, signed_manifest
from transferd.errors import (
    IntegrityError,
    ManifestExistsError,
    ObjectNotFoundError,
    PermanentStoreError,
    StoreFullError,
)
from transferd.stores.local import TEMP_MAX_AGE, LocalStore

JOB = "dcir"


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("jobs/*/tmp/*") if p.is_file())


@pytest.mark.usefixtures("umask_022")
async def test_layout_and_modes_are_those_of_the_spec(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    name, data = random_object(100)
    await store.put_object(JOB, name, data)
    await store.put_manifest(JOB, 7, signed_manifest(JOB, 7))

    obj = tmp_path / "store" / "jobs" / JOB / "objects" / name[:2] / name
    manifest = tmp_path / "store" / "jobs" / JOB / "manifests" / "00000000000000000007"
    assert obj.read_bytes() == data
    assert manifest.read_bytes() == signed_manifest(JOB, 7)
    assert stat.S_IMODE(obj.stat().st_mode) == 0o640
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o640
    for directory in (obj.parent, obj.parent.parent, manifest.parent, tmp_path / "store" / "jobs"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o750
    assert temp_files(tmp_path / "store") == []


async def test_bytes_are_fsynced_before_the_name_appears_and_the_name_before_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write order of the module docstring, observed on the real system calls."""
    store = LocalStore(tmp_path / "store")
    name, data = random_object(1000)
    events: list[str] = []
    final = tmp_path / "store" / "jobs" / JOB / "objects" / name[:2] / name

    def spy(real: Callable[..., Any], label: str) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            result = real(*args)
            if label == "fsync":
                kind = "dir" if stat.S_ISDIR(os.fstat(args[0]).st_mode) else "file"
                events.append(f"fsync {kind}")
            else:
                events.append(label)
            return result

        return call

    monkeypatch.setattr(os, "fsync", spy(os.fsync, "fsync"))
    monkeypatch.setattr(os, "rename", spy(os.rename, "rename"))
    await store.put_object(JOB, name, data)
    events.append("returned")

    assert final.exists()
    file_synced, renamed = events.index("fsync file"), events.index("rename")
    assert file_synced < renamed < len(events) - 2
    assert events[renamed + 1 :] == ["fsync dir", "returned"]


async def test_stale_temp_files_are_ignored_and_removed_at_open(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    name, data = random_object(100)
    await store.put_object(JOB, name, data)
    tmp_dir = tmp_path / "store" / "jobs" / JOB / "tmp"
    stale, fresh = tmp_dir / f"{name}.0000.tmp", tmp_dir / f"{name}.1111.tmp"
    stale.write_bytes(data[:50])
    fresh.write_bytes(data[:10])
    old = time.time() - TEMP_MAX_AGE - 60
    os.utime(stale, (old, old))
    # a stray file among the objects with a name that is no object's: ignored too
    (tmp_path / "store" / "jobs" / JOB / "objects" / name[:2] / f"{name}.partial").write_bytes(b"")

    assert [e async for e in store.list_objects(JOB)] == [(name, 100)]

    reopened = LocalStore(tmp_path / "store")

    assert not stale.exists()
    assert fresh.exists()  # may be another process's write in progress
    assert [e async for e in reopened.list_objects(JOB)] == [(name, 100)]


async def test_concurrent_manifests_of_one_sequence_store_exactly_one(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    candidates = [signed_manifest(JOB, 1, created=f"2026-11-22T21:00:0{i}Z") for i in range(6)]

    results = await asyncio.gather(
        *(store.put_manifest(JOB, 1, m) for m in candidates), return_exceptions=True
    )

    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, ManifestExistsError) for r in results if r is not None)
    assert await store.get_manifest(JOB, 1) == candidates[results.index(None)]
    assert temp_files(tmp_path / "store") == []


async def test_listing_is_in_ascending_name_order(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    names = []
    for size in range(50):
        name, data = random_object(size + 1)
        await store.put_object(JOB, name, data)
        names.append(name)

    assert [n async for n, _ in store.list_objects(JOB)] == sorted(names)


def test_a_store_whose_parent_is_missing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PermanentStoreError, match="does not exist"):
        LocalStore(tmp_path / "missing" / "store")


async def test_disk_full_is_reported_leaves_nothing_partial_and_passes_once_freed(
    small_fs: Path,
) -> None:
    store = LocalStore(small_fs / "store")
    third = SMALL_FS_SIZE * 3 // 8
    kept = [random_object(third) for _ in range(2)]
    for name, data in kept:
        await store.put_object(JOB, name, data)
    name, data = random_object(third)

    with pytest.raises(StoreFullError, match=f"the store at {small_fs / 'store'} is out of space"):
        await store.put_object(JOB, name, data)

    assert temp_files(small_fs / "store") == []
    assert await store.has_objects(JOB, [name]) == set()
    listed = [e async for e in store.list_objects(JOB)]
    assert sorted(listed) == sorted((n, len(d)) for n, d in kept)
    for n, _ in kept:
        assert hashlib.sha256(await store.get_object(JOB, n)).hexdigest() == n

    await store.delete_object(JOB, kept[0][0])
    await store.put_object(JOB, name, data)

    assert await store.get_object(JOB, name) == data


async def test_a_read_only_store_writes_nothing_and_refuses_writes(tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFoundError, match="there is no store"):
        LocalStore(tmp_path / "missing", read_only=True)
    assert not (tmp_path / "missing").exists()
    (tmp_path / "store").mkdir()
    store = LocalStore(tmp_path / "store", read_only=True)
    data = b"x"
    with pytest.raises(PermanentStoreError, match="read-only"):
        await store.put_object("job", hashlib.sha256(data).hexdigest(), data)
    assert list((tmp_path / "store").iterdir()) == []


# --- put_object_stream: an upload written as it arrives -----------------------------------------


async def _parts(
    data: bytes, size: int, fail_after: int | None = None, stall_after: int | None = None
) -> Any:
    for n, start in enumerate(range(0, len(data), size)):
        if fail_after is not None and n == fail_after:
            raise ConnectionResetError("the client went away")
        if n == stall_after:  # a client that stops sending: the upload waits for the rest
            await asyncio.Event().wait()
        yield data[start : start + size]
        await asyncio.sleep(0)


async def test_a_streamed_object_is_stored_like_a_put_one(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    name, data = random_object(3 << 20)  # several writes of STREAM_WRITE
    assert await store.put_object_stream(JOB, name, _parts(data, 65536)) == len(data)
    assert await store.get_object(JOB, name) == data
    assert temp_files(tmp_path / "store") == []
    # already stored: hashed, not written again
    assert await store.put_object_stream(JOB, name, _parts(data, 100_000)) == len(data)
    assert [n async for n, _ in store.list_objects(JOB)] == [name]


async def test_a_streamed_object_that_does_not_hash_to_its_name_leaves_nothing(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "store")
    name, data = random_object(2 << 20)
    with pytest.raises(IntegrityError):
        await store.put_object_stream(JOB, name, _parts(data[:-1] + b"x", 65536))
    assert await store.has_objects(JOB, [name]) == set()
    assert temp_files(tmp_path / "store") == []


async def test_a_stream_that_fails_half_way_leaves_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    name, data = random_object(4 << 20)
    with pytest.raises(ConnectionResetError):
        await store.put_object_stream(JOB, name, _parts(data, 65536, fail_after=40))
    assert await store.has_objects(JOB, [name]) == set()
    assert temp_files(tmp_path / "store") == []


async def test_a_cancelled_stream_waits_for_its_write_then_leaves_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    name, data = random_object(4 << 20)
    parts = _parts(data, 65536, stall_after=40)  # cancelled half-way, whatever the disk's speed
    task = asyncio.ensure_future(store.put_object_stream(JOB, name, parts))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert temp_files(tmp_path / "store") == []
    assert await store.has_objects(JOB, [name]) == set()
