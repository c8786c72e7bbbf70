"""RetryingStore: backoff with full jitter on transient errors only; no real waiting."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.stores.backends import random_object, signed_manifest
from transferd.errors import (
    ManifestExistsError,
    PermanentStoreError,
    StoreFullError,
    TransientStoreError,
)
from transferd.stores.memory import MemoryStore
from transferd.stores.retry import RetryingStore

JOB = "dcir"


class FlakyStore(MemoryStore):
    """A MemoryStore whose next ``failures`` calls raise ``error``, after doing the work when
    ``lose_answer`` is set (the reply was lost, the write happened)."""

    def __init__(self, failures: int, error: Exception, *, lose_answer: bool = False) -> None:
        super().__init__()
        self.failures, self.error, self.lose_answer = failures, error, lose_answer
        self.calls = 0

    async def _maybe_fail(self, work: Callable[[], Awaitable[Any]]) -> Any:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            if self.lose_answer:
                await work()
            raise self.error
        return await work()

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        await self._maybe_fail(lambda: super(FlakyStore, self).put_object(job, name, data))

    async def put_manifest(self, job: str, sequence: int, data: bytes) -> None:
        await self._maybe_fail(lambda: super(FlakyStore, self).put_manifest(job, sequence, data))

    async def list_objects(self, job: str) -> AsyncIterator[tuple[str, int]]:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise self.error
        async for entry in super().list_objects(job):
            yield entry


class Clock:
    """A fake clock that sleeping advances."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def retrying(inner: MemoryStore, clock: Clock, **kw: Any) -> RetryingStore:
    return RetryingStore(
        inner,
        base_delay=1.0,
        max_delay=8.0,
        sleep=clock.sleep,
        clock=clock,
        jitter=lambda: 1.0,  # the top of each window, so delays are exact
        **kw,
    )


async def test_transient_failures_are_retried_with_exponential_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    inner = FlakyStore(5, TransientStoreError("connection reset by peer"))
    store = retrying(inner, clock, attempts=8)
    name, data = random_object(10)

    with caplog.at_level(logging.WARNING, "transferd.stores.retry"):
        await store.put_object(JOB, name, data)

    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 8.0]  # doubled, then capped at max_delay
    assert inner.calls == 6
    assert await inner.get_object(JOB, name) == data
    assert len(caplog.records) == 5
    assert "attempt 1 of 8" in caplog.records[0].getMessage()
    assert "connection reset by peer" in caplog.records[0].getMessage()


def test_full_jitter_draws_from_zero_to_the_window() -> None:
    draws = iter([0.0, 0.5, 0.25])
    store = RetryingStore(
        MemoryStore(), base_delay=2.0, max_delay=100.0, jitter=lambda: next(draws)
    )

    assert [store.delay(1), store.delay(2), store.delay(3)] == [0.0, 2.0, 2.0]


async def test_a_peer_that_stays_dead_raises_with_attempts_and_time() -> None:
    clock = Clock()
    inner = FlakyStore(100, TransientStoreError("connection refused"))
    store = retrying(inner, clock, attempts=4)
    name, data = random_object(10)

    with pytest.raises(TransientStoreError) as caught:
        await store.put_object(JOB, name, data)

    assert inner.calls == 4
    assert caught.value.message == (
        f"storing object {name} of job {JOB} on memory failed 4 times over 7.0 s; "
        "last error: connection refused"
    )
    assert isinstance(caught.value.__cause__, TransientStoreError)


@pytest.mark.parametrize(
    "error",
    [PermanentStoreError("unauthorized"), StoreFullError("the store is out of space")],
    ids=["permanent", "full"],
)
async def test_other_errors_are_not_retried(error: Exception) -> None:
    clock = Clock()
    inner = FlakyStore(1, error)
    store = retrying(inner, clock)

    with pytest.raises(type(error)):
        await store.put_object(JOB, *random_object(10))

    assert inner.calls == 1
    assert clock.sleeps == []


async def test_a_manifest_stored_by_an_attempt_whose_answer_was_lost_counts_as_stored() -> None:
    clock = Clock()
    inner = FlakyStore(1, TransientStoreError("timeout"), lose_answer=True)
    store = retrying(inner, clock)
    manifest = signed_manifest(JOB, 1)

    await store.put_manifest(JOB, 1, manifest)

    assert await inner.get_manifest(JOB, 1) == manifest
    other = signed_manifest(JOB, 1, created="2026-11-22T21:00:05Z")
    with pytest.raises(ManifestExistsError):  # a different manifest is still refused
        await store.put_manifest(JOB, 1, other)


async def test_a_listing_is_retried_until_it_yields() -> None:
    clock = Clock()
    inner = FlakyStore(2, TransientStoreError("503"))
    name, data = random_object(10)
    await MemoryStore.put_object(inner, JOB, name, data)
    store = retrying(inner, clock)

    assert [e async for e in store.list_objects(JOB)] == [(name, 10)]
    assert clock.sleeps == [1.0, 2.0]
