"""Retries with backoff around any store, so that no driver retries on its own.

Only :class:`~transferd.errors.TransientStoreError` is retried (a timeout, a reset connection, a
5xx); a refusal, a full disk or a missing object is answered at once. The delay before retry *n*
is drawn uniformly from ``[0, min(max_delay, base_delay * 2**(n-1))]`` ("full jitter", AWS
Architecture Blog, "Exponential Backoff and Jitter"): many agents that lost the same host at the
same instant spread their retries instead of returning together. Every method of the contract is
idempotent, which is what makes retrying safe; two need a word:

- ``put_manifest`` retried after a lost answer may find the manifest its first attempt stored.
  A ``ManifestExistsError`` on a retry is therefore checked: if the stored bytes are the ones
  being put, the call succeeded; otherwise the refusal stands.
- ``list_objects`` is retried until its first entry is yielded. After that a restarted listing
  would repeat entries (the contract fixes no order), so a failure mid-listing is raised.

A host that says when to come back (429 or 503 with ``Retry-After``, raised as
:class:`ThrottledError`) is not asked again sooner: the delay is at least what it said, up to
``MAX_RETRY_AFTER``.

The clock, the sleep and the random source are injectable so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from transferd.core.manifest import ManifestKey
from transferd.errors import (
    ManifestExistsError,
    PermanentStoreError,
    ThrottledError,
    TransientStoreError,
)
from transferd.stores.base import CopyStore, Store

T = TypeVar("T")

MAX_RETRY_AFTER = 300.0
"""Seconds at most that a host's Retry-After holds a retry back: a host asking for more is
taken as asking for this, so a wrong header cannot stall a job for hours."""


log = logging.getLogger("transferd.stores.retry")


class RetryingStore:
    """A Store that retries its inner store's transient failures with backoff."""

    def __init__(
        self,
        store: Store,
        *,
        attempts: int = 8,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.inner = store
        self.description = store.description
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return self._jitter() * ceiling

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        started = self._clock()
        attempt = 1
        while True:
            try:
                return await call()
            except TransientStoreError as exc:
                if attempt >= self.attempts:
                    elapsed = self._clock() - started
                    raise TransientStoreError(
                        f"{what} on {self.description} failed {attempt} times over "
                        f"{elapsed:.1f} s; last error: {exc.message}",
                        hint=exc.hint or "check that the store is reachable, then resume the job",
                    ) from exc
                delay = self.delay(attempt)
                if isinstance(exc, ThrottledError):
                    delay = max(delay, min(exc.retry_after, MAX_RETRY_AFTER))
                log.warning(
                    "%s on %s failed (attempt %d of %d), retrying in %.1f s: %s",
                    what,
                    self.description,
                    attempt,
                    self.attempts,
                    delay,
                    exc.message,
                )
                await self._sleep(delay)
                attempt += 1

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        await self._call(
            f"storing object {name} of job {job}",
            lambda: self.inner.put_object(job, name, data),
        )

    async def has_objects(self, job: str, names: Sequence[str]) -> set[str]:
        return await self._call(
            f"asking which of {len(names)} objects job {job} holds",
            lambda: self.inner.has_objects(job, names),
        )

    async def get_object(
        self, job: str, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        return await self._call(
            f"reading object {name} of job {job}",
            lambda: self.inner.get_object(job, name, offset, length),
        )

    async def list_objects(self, job: str) -> AsyncIterator[tuple[str, int]]:
        iterator: AsyncIterator[tuple[str, int]] | None = None

        async def first() -> tuple[str, int] | None:
            nonlocal iterator
            iterator = aiter(self.inner.list_objects(job))
            try:
                return await anext(iterator)
            except StopAsyncIteration:
                return None

        entry = await self._call(f"listing the objects of job {job}", first)
        if entry is None or iterator is None:
            return
        yield entry
        async for entry in iterator:
            yield entry

    async def delete_object(self, job: str, name: str) -> None:
        await self._call(
            f"deleting object {name} of job {job}",
            lambda: self.inner.delete_object(job, name),
        )

    async def put_manifest(self, job: str, sequence: int, data: bytes, epoch: int = 0) -> None:
        tried = False

        async def put() -> None:
            nonlocal tried
            try:
                await self.inner.put_manifest(job, sequence, data, epoch)
            except ManifestExistsError:
                # A first attempt whose answer was lost may have stored it: same bytes, done.
                if tried and await self.inner.get_manifest(job, sequence, epoch) == data:
                    return
                raise
            finally:
                tried = True

        await self._call(f"storing manifest {ManifestKey(sequence, epoch)} of job {job}", put)

    async def get_manifest(self, job: str, sequence: int, epoch: int = 0) -> bytes:
        return await self._call(
            f"reading manifest {ManifestKey(sequence, epoch)} of job {job}",
            lambda: self.inner.get_manifest(job, sequence, epoch),
        )

    async def list_manifests(self, job: str) -> list[ManifestKey]:
        return await self._call(
            f"listing the manifests of job {job}", lambda: self.inner.list_manifests(job)
        )

    async def list_jobs(self) -> list[str]:
        return await self._call("listing jobs", self.inner.list_jobs)

    # --- copy records: retried like manifests; an inner store without them refuses ---------

    def _copy_store(self) -> CopyStore:
        if not isinstance(self.inner, CopyStore):
            raise PermanentStoreError(f"the store {self.description} does not keep copy records")
        return self.inner

    async def put_copy_record(self, copy: str, series: str, sequence: int, data: bytes) -> None:
        inner = self._copy_store()
        tried = False

        async def put() -> None:
            nonlocal tried
            try:
                await inner.put_copy_record(copy, series, sequence, data)
            except ManifestExistsError:
                if tried and await inner.get_copy_record(copy, series, sequence) == data:
                    return
                raise
            finally:
                tried = True

        await self._call(f"storing record {sequence} of {series} of copy {copy}", put)

    async def get_copy_record(self, copy: str, series: str, sequence: int) -> bytes:
        inner = self._copy_store()
        return await self._call(
            f"reading record {sequence} of {series} of copy {copy}",
            lambda: inner.get_copy_record(copy, series, sequence),
        )

    async def list_copy_records(self, copy: str, series: str) -> list[int]:
        inner = self._copy_store()
        return await self._call(
            f"listing {series} of copy {copy}", lambda: inner.list_copy_records(copy, series)
        )

    async def delete_copy_record(self, copy: str, series: str, sequence: int) -> None:
        inner = self._copy_store()
        await self._call(
            f"deleting record {sequence} of {series} of copy {copy}",
            lambda: inner.delete_copy_record(copy, series, sequence),
        )

    async def close(self) -> None:
        await self.inner.close()
