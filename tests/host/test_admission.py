"""Admission in process: upload slots and key rates answer with Retry-After, which the client
waits for; refusals are summed up per interval; a partial upload being written is never swept."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.host.signing import storage_host
from tests.stores.backends import SENDER, allow_all, random_object, serving
from transferd.core.keys import SenderSecretKey
from transferd.errors import ThrottledError
from transferd.host.admission import KeyRates, RefusalLog
from transferd.host.auth import NonceCache
from transferd.host.limits import HostLimits
from transferd.host.server import make_app
from transferd.stores.http import HttpStore
from transferd.stores.local import LocalStore
from transferd.stores.memory import MemoryStore
from transferd.stores.retry import RetryingStore

JOB = "snds-dcir"


class HeldStore(MemoryStore):
    """Holds the first upload until released: the one slot stays taken."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = asyncio.Event(), asyncio.Event()

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        if not self.entered.is_set():
            self.entered.set()
            await self.release.wait()
        await super().put_object(job, name, data)


async def test_an_upload_over_the_cap_is_told_when_to_come_back_and_the_client_waits() -> None:
    store = HeldStore()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        store.release.set()  # meanwhile the first upload finishes and frees its slot

    limits = HostLimits(max_uploads=1, upload_wait=0.05)
    async with serving(make_app(store, allow_all(), limits=limits)) as url:
        first = HttpStore(url, SENDER)
        held = asyncio.create_task(first.put_object(JOB, *random_object(100)))
        await store.entered.wait()
        second = HttpStore(url, SENDER)
        name, data = random_object(100)
        with pytest.raises(ThrottledError) as caught:
            await second.put_object(JOB, name, data)
        retrying = RetryingStore(second, sleep=sleep, jitter=lambda: 0.0)
        await retrying.put_object(JOB, name, data)
        await held
        await first.close()
        await retrying.close()

    assert "answered 503 busy: 1 uploads are being received" in caught.value.message
    assert caught.value.retry_after == 1.0
    assert sleeps == [1.0]  # the host's Retry-After, not the backoff's 0 s
    assert await store.get_object(JOB, name) == data


async def test_a_key_over_its_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    limits = HostLimits(key_rate=1.0, key_burst=2)
    async with storage_host(tmp_path / "s", limits=limits) as host:
        answers = [await host.send("GET", f"/v1/jobs/{JOB}/manifests") for _ in range(3)]

    assert [a.status for a in answers] == [404, 404, 429]
    assert answers[2].json["code"] == "rate_limited"
    assert answers[2].headers["Retry-After"] == "1"


def test_a_bucket_refills_at_its_rate_and_idle_buckets_are_forgotten() -> None:
    now = [0.0]
    rates = KeyRates(rate=2.0, burst=2, clock=lambda: now[0])
    rates.take(b"k", "tds1k")
    rates.take(b"k", "tds1k")
    with pytest.raises(Exception, match="over its rate of 2 requests a second") as caught:
        rates.take(b"k", "tds1k")
    assert getattr(caught.value, "retry_after", None) == pytest.approx(0.5)
    now[0] = 0.5
    rates.take(b"k", "tds1k")  # one more token
    now[0] = 10.0
    rates.forget_idle()
    assert len(rates) == 0


def test_refusals_are_logged_once_per_interval_and_code(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    refusals = RefusalLog(interval=10.0, clock=lambda: now[0])
    shown = [refusals.note("forbidden", f"request {i}") for i in range(1000)]
    assert shown.count(True) == 1
    assert refusals.note("rate_limited", "other") is True  # another code has its own line
    now[0] = 11.0
    with caplog.at_level(logging.WARNING, "transferd.serve"):
        refusals.flush()
    assert [r.getMessage() for r in caplog.records] == [
        "refused 999 more requests (forbidden) in the last 11 s, the last: request 999"
    ]
    assert refusals.refused == {"forbidden": 1000, "rate_limited": 1}


async def test_a_partial_upload_being_written_is_never_swept(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    name, data = random_object(3 << 20)
    more = asyncio.Event()

    async def parts() -> AsyncIterator[bytes]:
        yield data[: 1 << 20]
        yield data[1 << 20 : 2 << 20]  # written once the file is open
        await more.wait()  # a stalled link
        yield data[2 << 20 :]

    upload = asyncio.create_task(store.put_object_stream(JOB, name, parts()))
    tmp = tmp_path / "store" / "jobs" / JOB / "tmp"
    for _ in range(200):
        if tmp.is_dir() and any(p.stat().st_size > 0 for p in tmp.iterdir()):
            break
        await asyncio.sleep(0.01)
    (writing,) = list(tmp.iterdir())
    os.utime(writing, (1, 1))  # as old as can be: still being written
    leftover = tmp / f"{'0' * 64}.{'ab' * 8}.tmp"  # a killed host's
    leftover.write_bytes(b"x" * 1000)
    os.utime(leftover, (1, 1))

    assert await store.sweep_partials(60) == (1, 1000)
    assert writing.exists()
    more.set()
    assert await upload == len(data)
    assert await store.get_object(JOB, name) == data
    assert list(tmp.iterdir()) == []


async def test_a_key_without_any_grant_is_refused_before_anything_is_remembered(
    tmp_path: Path,
) -> None:
    nonces = NonceCache()
    async with storage_host(tmp_path / "s", nonces=nonces) as host:
        strangers = [
            await host.send("GET", "/v1/jobs", key=SenderSecretKey(os.urandom(32)))
            for _ in range(50)
        ]
        assert (len(nonces), nonces.keys) == (0, 0)
        genuine = await host.send("GET", "/v1/jobs")
        assert (len(nonces), nonces.keys) == (1, 1)

    assert {(a.status, a.json["code"]) for a in strangers} == {(403, "forbidden")}
    assert "has no grant on this host" in strangers[0].json["error"]
    assert genuine.status == 200
