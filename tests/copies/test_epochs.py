"""Lease epochs (protocol/SPEC.md 12.2), in one process on a real local store with real sends.

Agent a claims a job (epoch 1) and stores version 1; it stalls; agent b, having seen the lease
unchanged for a whole lease, takes the job over (epoch 2) and stores version 2 on top. When a
wakes, its next manifest is refused before it is put; one it put anyway (a write that landed
before its check) is stored under its own, lower epoch, is never the head, and verify lists it
as superseded while the copy verifies.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import pytest

from transferd.copies.fence import FencedStore
from transferd.copies.leases import Lease, Leases
from transferd.core.copy import CopySecret
from transferd.core.keys import RecipientIdentity, SenderSecretKey
from transferd.errors import LeaseLostError
from transferd.restore.directory import restore
from transferd.send.config import PipelineConfig
from transferd.send.publish import put_manifest
from transferd.send.run import SendResult, send
from transferd.send.state import provision_job_key
from transferd.sources.directory import DirectorySource
from transferd.stores.local import LocalStore
from transferd.verify.run import verify_copy

COPY, JOB = "snds-2026", "dcir"
SENDER = SenderSecretKey(os.urandom(32))
OWNER = RecipientIdentity(os.urandom(32))
SECRET = CopySecret(os.urandom(32))


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


def agent(store: LocalStore, name: str, clock: Clock) -> Leases:
    return Leases(store, COPY, name, lease_seconds=30, settle_seconds=0, clock=clock,
                  sleep=no_wait)  # fmt: skip


async def send_as(
    leases: Leases, lease: Lease, store: LocalStore, source: Path, state: Path
) -> SendResult:
    provision_job_key(state, JOB, SECRET.job_key(JOB), SECRET.job_id(JOB))
    fenced = FencedStore(store, leases, lease, SENDER.public())
    return await send(
        source=DirectorySource(source), store=fenced, job=JOB,
        sender=SENDER, recipients=[OWNER.public()], state_dir=state,
        config=PipelineConfig(workers=1), epoch=lease.epoch,
    )  # fmt: skip


async def test_a_stale_holder_is_refused_and_what_it_wrote_late_is_superseded(
    tmp_path: Path,
) -> None:
    store, clock = LocalStore(tmp_path / "store"), Clock()
    a, b = agent(store, "a", clock), agent(store, "b", clock)
    source = tmp_path / "src"
    source.mkdir()
    (source / "claims.csv").write_text("1;consultation\n" * 1000)

    lease_a = await a.try_claim(JOB, own=True)
    assert lease_a is not None
    assert lease_a.epoch == 1
    first = await send_as(a, lease_a, store, source, tmp_path / "state-a")
    assert first.manifest.key == (1, 1)

    assert await b.try_claim(JOB, own=False) is None  # b starts counting
    clock.now += 31  # a is paused: its lease is not renewed
    lease_b = await b.try_claim(JOB, own=False)
    assert lease_b is not None
    assert lease_b.epoch == 2
    (source / "claims.csv").write_text("1;consultation\n" * 1000 + "2;radiologie\n")
    second = await send_as(b, lease_b, store, source, tmp_path / "state-b")
    assert second.manifest.key == (2, 2)
    assert second.manifest.body.previous == first.manifest.digest

    # a wakes: its lease is overdue by its own clock, so its first write reads the lease, finds
    # b's, and stops: no pack, no segment, no manifest of it is stored
    (source / "new.bin").write_bytes(os.urandom(50_000))
    before = sorted([n async for n, _ in store.list_objects(JOB)])
    with pytest.raises(LeaseLostError, match="agent b took over at epoch 2") as caught:
        await send_as(a, lease_a, store, source, tmp_path / "state-a")
    assert caught.value.exit_code == 26
    assert caught.value.fields["taken_over"] is True
    assert sorted([n async for n, _ in store.list_objects(JOB)]) == before
    late = replace(first.manifest.body, sequence=2, previous=first.manifest.digest,
                   created="2026-11-22T21:00:09Z")  # fmt: skip
    fenced = FencedStore(store, a, lease_a, SENDER.public())
    with pytest.raises(LeaseLostError, match="agent b took over at epoch 2 while this agent "
                       r"\(epoch 1\) was paused or cut off"):  # fmt: skip
        await put_manifest(fenced, late, SENDER)
    assert await store.list_manifests(JOB) == [(1, 1), (2, 2)]

    # one put that landed before a could check: its own key, never the head
    await put_manifest(store, late, SENDER)
    assert await store.list_manifests(JOB) == [(1, 1), (2, 1), (2, 2)]
    report = await verify_copy(store, JOB, SENDER.public())
    assert report.verdict == "pass", report.failures
    superseded = [m for m in report.manifests if m.get("superseded")]
    assert [(m["sequence"], m["epoch"]) for m in superseded] == [(2, 1)]
    assert (
        "superseded (written after the job was taken over): 2 (epoch 1)"
        in (report.notes["manifest-chain"])
    )
    await restore(store=store, job=JOB, identity=OWNER, out=tmp_path / "out")
    assert (tmp_path / "out" / "claims.csv").read_text().endswith("2;radiologie\n")
