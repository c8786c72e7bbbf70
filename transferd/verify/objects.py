"""Read stored objects and hash them on every core; say what a mismatch means.

Reading: each object is read in 8 MiB ranges (``Store.get_object`` with offset and length), so
memory is bounded by ``in_flight`` x 8 MiB whatever the object sizes, and the same code reads a
local directory, an HTTP store or S3. Hashing runs on a thread pool of ``workers`` threads:
hashlib releases the GIL on large buffers, so N objects hash on N cores while others are being
read. Objects in flight are twice the workers, so the disk is never idle waiting for a hash.

Judging: an object is named by the SHA-256 of its bytes, so a mismatch has one of a few causes,
told apart by what the bytes hash to instead: another referenced object's name (two objects
swapped, or one copied over another), fewer bytes than signed (truncated), or anything else
(altered: a flipped bit, other content of the same size, appended bytes).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from transferd.core.constants import PACK_MAX_SIZE
from transferd.errors import ObjectNotFoundError, StoreError
from transferd.report.model import Failure
from transferd.stores.base import Store
from transferd.verify.inventory import Inventory, Ref

READ_SIZE = 8 * 1024 * 1024
"""Bytes per read: large enough that the thread hops and a request per range cost nothing next
to hashing it (~5 ms at 1.7 GB/s), small enough that 2 x workers of them in flight stay modest."""
INLINE_HASH = 256 * 1024
"""Below this, hashing in the event loop's thread costs less than a hop to the pool."""
READ_LIMIT = PACK_MAX_SIZE
"""The most bytes read of an object larger than signed: enough to recognise any object of the
job copied over it (none can be larger), without reading an arbitrarily large planted file."""


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class Digest:
    size: int
    """Bytes read: the listed size, or less when the object shrank while being read."""
    sha256: str


@dataclass
class Throughput:
    """What has been read so far; the progress line polls it."""

    objects: int = 0
    bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    total_bytes: int | None = None
    """Bytes the manifests name, once the object lists are read: what will be read in all."""


class ObjectReader:
    """Hashes objects of one job in a store; ``close()`` stops its threads."""

    def __init__(
        self, store: Store, job: str, workers: int, throughput: Throughput | None = None
    ) -> None:
        self.store = store
        self.job = job
        self.workers = max(1, workers)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="transferd-verify")
        self.throughput = throughput or Throughput()
        self.throughput.started = time.monotonic()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def digest(self, name: str, size: int) -> Digest:
        """SHA-256 of the first ``size`` bytes of object ``name`` (its listed size)."""
        loop = asyncio.get_running_loop()
        hasher = hashlib.sha256()
        offset = 0
        while offset < size:
            want = min(READ_SIZE, size - offset)
            data = await self.store.get_object(self.job, name, offset, want)
            if not data:
                break
            if len(data) < INLINE_HASH:
                hasher.update(data)
            else:
                await loop.run_in_executor(self._pool, hasher.update, data)
            offset += len(data)
            self.throughput.bytes += len(data)
            if len(data) < want:
                break
        self.throughput.objects += 1
        return Digest(offset, hasher.hexdigest())

    async def read_whole(self, name: str, size: int) -> bytes:
        """A small object's bytes (an object-list segment), hashed by the caller."""
        data = await self.store.get_object(self.job, name, 0, size)
        self.throughput.objects += 1
        self.throughput.bytes += len(data)
        return data

    async def check_all(
        self, refs: Iterable[Ref], inventory: Inventory, fail: Callable[[Failure], None]
    ) -> None:
        """Check every ref, ``2 x workers`` at a time; failures go to ``fail`` as they come."""
        pending: set[asyncio.Task[None]] = set()
        for ref in refs:
            if len(pending) >= 2 * self.workers:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            pending.add(asyncio.create_task(self.check_one(ref, inventory, fail)))
        if pending:
            for task in (await asyncio.wait(pending))[0]:
                task.result()

    async def check_unnamed(
        self, objects: Iterable[tuple[str, int]], fail: Callable[[Failure], None], *, extra: bool
    ) -> None:
        """Objects no trusted manifest names. Each is still named by its own SHA-256, so even
        when the object lists that would name it are lost, one whose bytes do not hash to its
        name is found altered; with ``extra`` each is also reported as an extra object."""
        pending: set[asyncio.Task[None]] = set()
        for name, size in objects:
            if len(pending) >= 2 * self.workers:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            pending.add(asyncio.create_task(self._check_unnamed(name, size, fail, extra)))
        if pending:
            for task in (await asyncio.wait(pending))[0]:
                task.result()

    async def _check_unnamed(
        self, name: str, size: int, fail: Callable[[Failure], None], extra: bool
    ) -> None:
        what = f"object {name} ({size} bytes)"
        status = "not read: larger than any object of a job"
        intact = True
        if size <= READ_LIMIT:
            try:
                digest = await self.digest(name, size)
            except StoreError as e:
                status, intact = f"could not be read: {e.message}", True
            else:
                intact = digest.sha256 == name and digest.size == size
                status = "hashes to its name" if intact else f"hashes to {digest.sha256}"
        if extra:
            fail(
                Failure(
                    "extra",
                    f"{what} is in the store but no trusted manifest names it; it {status}",
                    object=name,
                    actual={"size": size},
                )
            )
        elif not intact:
            fail(
                Failure(
                    "altered",
                    f"{what}, which no verified object list names, {status}, not to its name",
                    object=name,
                    actual={"size": size},
                )
            )

    async def check_one(
        self, ref: Ref, inventory: Inventory, fail: Callable[[Failure], None]
    ) -> None:
        inventory.mark_checked(ref.name)
        listed = ref.listed_size if ref.listed_size is not None else ref.size
        if listed > max(ref.size, READ_LIMIT):
            fail(_failure("altered", ref, f"is {listed} bytes, signed as {ref.size}", listed))
            return
        try:
            digest = await self.digest(ref.name, listed)
        except ObjectNotFoundError:
            fail(_failure("missing", ref, "disappeared from the store while being verified"))
            return
        except StoreError as e:
            fail(_failure("unreadable", ref, f"could not be read: {e.message}"))
            return
        failure = judge(ref, digest, inventory)
        if failure is not None:
            fail(failure)


def judge(ref: Ref, digest: Digest, inventory: Inventory) -> Failure | None:
    """None when the bytes are the signed ones, else the failure that explains them best."""
    if digest.sha256 == ref.name and digest.size == ref.size:
        return None
    actual = {"size": digest.size, "sha256": digest.sha256}
    other = inventory.ref(digest.sha256) if digest.sha256 != ref.name else None
    if other is not None and other.size == digest.size:
        return _failure(
            "altered",
            ref,
            f"holds the bytes of {other.kind} {other.name} (objects swapped or copied over)",
            actual=actual,
        )
    if digest.size < ref.size:
        return _failure(
            "truncated", ref, f"is truncated: {digest.size} of {ref.size} bytes", actual=actual
        )
    if digest.size > ref.size:
        return _failure(
            "altered", ref, f"is {digest.size} bytes, signed as {ref.size}", actual=actual
        )
    return _failure(
        "altered", ref, f"was altered: its bytes hash to {digest.sha256}", actual=actual
    )


def _failure(
    kind: str,
    ref: Ref,
    what: str,
    listed: int | None = None,
    actual: dict[str, object] | None = None,
) -> Failure:
    if actual is None and listed is not None:
        actual = {"size": listed}
    return Failure(
        kind=kind,
        message=f"{ref.kind} {ref.name} (manifest {ref.manifest}) {what}",
        object=ref.name,
        object_kind=ref.kind,
        manifest=ref.manifest,
        expected={"size": ref.size, "sha256": ref.name},
        actual=actual,
    )
