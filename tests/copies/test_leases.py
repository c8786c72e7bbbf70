"""copies/leases.py: claim, renew, expire by observation, fence, release (on a memory store)."""

from __future__ import annotations

import asyncio

from transferd.copies.leases import DONE, HELD, Leases
from transferd.errors import TransientStoreError
from transferd.stores.memory import MemoryStore

COPY, JOB = "snds-2026", "dcir"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


def agent(store: MemoryStore, name: str, clock: Clock, session: str | None = None) -> Leases:
    return Leases(store, COPY, name, lease_seconds=30, settle_seconds=0, clock=clock,
                  sleep=no_wait, session=session)  # fmt: skip


async def test_a_held_job_passes_to_another_agent_only_after_a_whole_lease_unchanged() -> None:
    store, clock = MemoryStore(), Clock()
    a, b = agent(store, "a", clock), agent(store, "b", clock)

    lease = await a.try_claim(JOB, own=True)
    assert lease is not None
    assert await b.try_claim(JOB, own=False) is None  # starts b's count
    clock.now += 29
    assert await b.try_claim(JOB, own=False) is None
    assert await a.renew(lease)
    assert await b.try_claim(JOB, own=False) is None  # b sees the renewal: counts again
    clock.now += 29
    assert await b.try_claim(JOB, own=False) is None
    clock.now += 2
    taken = await b.try_claim(JOB, own=False)
    assert taken is not None

    assert not await a.renew(lease)  # a finds b's record on top: lost
    number, record = await b.newest(JOB)
    assert record is not None
    assert (record.agent, record.state, number) == ("b", HELD, taken.sequence)
    assert len(await store.list_copy_records(COPY, f"leases/{JOB}")) <= 2  # pruned


async def test_another_agent_waits_a_lease_before_starting_a_job_never_started() -> None:
    store, clock = MemoryStore(), Clock()
    b = agent(store, "b", clock)
    assert await b.try_claim(JOB, own=False) is None
    clock.now += 30
    assert await b.try_claim(JOB, own=False) is not None


async def test_release_frees_at_once_and_done_is_never_claimed() -> None:
    store, clock = MemoryStore(), Clock()
    a, b = agent(store, "a", clock), agent(store, "b", clock)
    lease = await a.try_claim(JOB, own=True)
    assert lease is not None
    await a.release(lease)
    again = await b.try_claim(JOB, own=False)
    assert again is not None
    await b.release(again, DONE)
    clock.now += 1000
    assert await a.try_claim(JOB, own=True) is None


async def test_done_lands_above_a_renewal_whose_put_was_cut_off_after_it_was_stored() -> None:
    """A renewal cancelled while its put was on the wire can have stored record n+1 without the
    holder counting it; "done" must then go above it, not be dropped (the job would look held)."""
    store, clock = MemoryStore(), Clock()
    a = agent(store, "a", clock)
    lease = await a.try_claim(JOB, own=True)
    assert lease is not None
    assert await a._put(JOB, lease.sequence + 1, HELD, epoch=lease.epoch)  # the lost renewal
    assert await a.release(lease, DONE)
    number, record = await a.newest(JOB)
    assert record is not None
    assert (record.state, number) == (DONE, lease.sequence)


async def test_a_renewal_after_one_whose_answer_was_lost_is_not_taken_for_a_takeover() -> None:
    store, clock = MemoryStore(), Clock()
    a = agent(store, "a", clock)
    lease = await a.try_claim(JOB, own=True)
    assert lease is not None
    assert await a._put(JOB, lease.sequence + 1, HELD, epoch=lease.epoch)  # stored, uncounted
    assert await a.renew(lease)
    number, record = await a.newest(JOB)
    assert record is not None
    assert (record.agent, record.state, number) == ("a", HELD, lease.sequence)


async def test_release_gives_up_when_another_agent_holds_the_job() -> None:
    store, clock = MemoryStore(), Clock()
    a, b = agent(store, "a", clock), agent(store, "b", clock)
    lease = await a.try_claim(JOB, own=True)
    assert lease is not None
    clock.now += 31
    assert await b.try_claim(JOB, own=False) is None  # starts b's count
    clock.now += 31
    taken = await b.try_claim(JOB, own=False)
    assert taken is not None
    assert not await a.release(lease, DONE)
    _, record = await a.newest(JOB)
    assert record is not None
    assert (record.agent, record.state) == ("b", HELD)


async def test_an_agent_restarted_takes_its_own_job_back_at_once() -> None:
    store, clock = MemoryStore(), Clock()
    first = agent(store, "a", clock, session="1" * 32)
    assert await first.try_claim(JOB, own=True) is not None
    restarted = agent(store, "a", clock, session="2" * 32)
    assert await restarted.try_claim(JOB, own=True) is not None


class FailingStore(MemoryStore):
    failing = False

    async def put_copy_record(self, copy: str, series: str, sequence: int, data: bytes) -> None:
        if self.failing:
            raise TransientStoreError("the store is unreachable")
        await super().put_copy_record(copy, series, sequence, data)


async def test_a_holder_that_cannot_renew_for_half_a_lease_stops_itself() -> None:
    store, clock = FailingStore(), Clock()
    ticks: list[float] = []

    async def tick(seconds: float) -> None:
        ticks.append(seconds)
        clock.now += seconds
        await asyncio.sleep(0)

    a = Leases(store, COPY, "a", lease_seconds=30, settle_seconds=0, clock=clock, sleep=tick)
    lease = await a.try_claim(JOB, own=True)
    assert lease is not None
    store.failing = True
    await asyncio.wait_for(a.keep(lease), 5)
    assert lease.lost.is_set()
    assert "could not be renewed for 15 s" in lease.reason
    assert sum(ticks) <= 30  # stopped before anyone could have seen a whole lease pass
