"""The bandwidth limit and the upload valve, in process: no daemon, a fake clock where it counts."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from transferd.errors import ConfigError, TransientStoreError
from transferd.stores.memory import MemoryStore
from transferd.stores.ratelimit import TokenBucket
from transferd.stores.throttle import ThrottledStore
from transferd.util.units import format_rate, parse_rate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "rate"),
    [("0", 0), ("512", 512), ("512K", 512 << 10), ("20M", 20 << 20), ("1.5G", 3 << 29),
     ("10MiB/s", 10 << 20), ("8mb", 8 << 20)],
)  # fmt: skip
def test_parse_rate(text: str, rate: int) -> None:
    assert parse_rate(text) == rate


def test_a_rate_that_does_not_parse_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a bandwidth: '20 furlongs'"):
        parse_rate("20 furlongs")
    assert format_rate(0) == "unlimited"
    assert format_rate(20 << 20) == "20 MiB/s"


def test_an_upload_may_go_into_debt_and_the_next_waits_it_out() -> None:
    clock = Clock()

    async def main() -> None:
        bucket = TokenBucket(1 << 20, clock=clock)
        await bucket.acquire(4 << 20)  # a 4 MiB pack under 1 MiB/s leaves at once...
        assert bucket.delay() == pytest.approx(3.0)  # ...and the next waits 3 s (1 s of burst)
        clock.now = 2.0
        assert bucket.delay() == pytest.approx(1.0)
        bucket.set_rate(2 << 20)  # a higher limit shortens the wait at once
        assert bucket.delay() == pytest.approx(0.5)
        bucket.set_rate(0)
        assert bucket.delay() == 0

    asyncio.run(main())


def test_a_new_rate_wakes_a_waiting_upload() -> None:
    async def main() -> None:
        bucket = TokenBucket(1024)
        await bucket.acquire(1 << 20)  # about 1000 s of debt
        waiter = asyncio.create_task(bucket.acquire(1))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        bucket.set_rate(0)
        await asyncio.wait_for(waiter, 2)

    asyncio.run(main())


def _obj(n: int) -> tuple[str, bytes]:
    data = bytes([n]) * 1000
    return hashlib.sha256(data).hexdigest(), data


class SlowStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.fail_next = False

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        await self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise TransientStoreError("reset")
        await super().put_object(job, name, data)


def test_pause_lets_uploads_in_flight_finish_and_starts_no_new_one() -> None:
    async def main() -> None:
        inner = SlowStore()
        store = ThrottledStore(inner)
        first = asyncio.create_task(store.put_object("j", *_obj(1)))
        await asyncio.sleep(0)
        assert store.stats.in_flight == 1
        store.pause()
        second = asyncio.create_task(store.put_object("j", *_obj(2)))
        await asyncio.sleep(0)
        assert store.stats.waiting == 1
        idle = asyncio.create_task(store.idle())
        inner.release.set()
        await asyncio.wait_for(idle, 1)
        await first
        assert len(inner.objects["j"]) == 1
        assert not second.done()
        second.cancel()  # a stop cancels it: it never started, nothing is acknowledged
        with pytest.raises(asyncio.CancelledError):
            await second
        assert store.stats.waiting == 0
        assert len(inner.objects["j"]) == 1
        store.resume()
        inner.fail_next = True
        with pytest.raises(TransientStoreError):
            await store.put_object("j", *_obj(3))
        await store.put_object("j", *_obj(3))
        assert store.stats.transient_errors == 1
        assert store.stats.uploads == 2
        assert store.stats.upload_bytes == 2000

    asyncio.run(main())
