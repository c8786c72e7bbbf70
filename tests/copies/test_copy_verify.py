"""copies/verify.py and copies/manifests.py on a memory store: complete, incomplete, forged."""

from __future__ import annotations

import os
from pathlib import Path

from transferd.copies.manifests import done_jobs, newest_copy_manifest, record_jobs
from transferd.copies.verify import verify_whole_copy
from transferd.core.copy import CopySecret
from transferd.core.keys import RecipientIdentity, SenderSecretKey
from transferd.core.manifest import SignedManifest
from transferd.send.config import PipelineConfig
from transferd.send.run import send
from transferd.send.state import provision_job_key
from transferd.sources.directory import DirectorySource
from transferd.stores.memory import MemoryStore

COPY = "snds-2026"
SECRET = CopySecret(bytes(range(32)))
SENDER = SenderSecretKey(bytes(range(1, 33)))
OWNER = RecipientIdentity(bytes(range(2, 34)))


async def send_job(store: MemoryStore, tmp: Path, job: str) -> SignedManifest:
    src = tmp / "src" / job
    src.mkdir(parents=True)
    (src / "data.csv").write_bytes(os.urandom(3000) + job.encode())
    provision_job_key(tmp / "state", job, SECRET.job_key(job), SECRET.job_id(job))
    result = await send(
        source=DirectorySource(src), store=store, job=job, sender=SENDER,
        recipients=[OWNER.public()], state_dir=tmp / "state", config=PipelineConfig(workers=1),
    )  # fmt: skip
    return result.manifest


async def record(store: MemoryStore, finished: dict[str, SignedManifest]) -> None:
    await record_jobs(
        store, copy=COPY, copy_id=SECRET.copy_id(COPY), planned=["alpha", "bravo"],
        finished=finished, sender=SENDER, created=lambda: "2026-11-22T21:00:00Z",
        settle_seconds=0,
    )  # fmt: skip


async def test_a_copy_is_incomplete_until_every_job_is_recorded_then_passes(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    alpha = await send_job(store, tmp_path, "alpha")
    await record(store, {"alpha": alpha})

    partial = await verify_whole_copy(store, COPY, SENDER.public())
    assert partial.verdict == "incomplete"
    assert partial.jobs["bravo"] is None
    assert partial.jobs["alpha"] is not None

    bravo = await send_job(store, tmp_path, "bravo")
    await record(store, {"bravo": bravo})
    await record(store, {"bravo": bravo})  # nothing new: no new copy manifest

    whole = await verify_whole_copy(store, COPY, SENDER.public())
    assert whole.verdict == "pass", whole.findings
    assert whole.copy_manifests == 2
    newest = await newest_copy_manifest(store, COPY, SENDER.public(), SECRET.copy_id(COPY))
    assert done_jobs(newest) == {"alpha": 1, "bravo": 1}


async def test_a_forged_or_rolled_back_copy_manifest_is_untrusted(tmp_path: Path) -> None:
    store = MemoryStore()
    alpha = await send_job(store, tmp_path, "alpha")
    await record(store, {"alpha": alpha})
    bravo = await send_job(store, tmp_path, "bravo")
    await record(store, {"bravo": bravo})

    forged = store.records[(COPY, "manifests")][2].replace(
        b'"sequence":1,"sha256"', b'"sequence":2,"sha256"'
    )
    store.records[(COPY, "manifests")][2] = forged
    report = await verify_whole_copy(store, COPY, SENDER.public())
    assert report.verdict == "untrusted"
    assert "copy manifest 2" in report.findings[0][1]

    del store.records[(COPY, "manifests")][2]
    other = SenderSecretKey(bytes(range(5, 37)))
    report = await verify_whole_copy(store, COPY, other.public())
    assert report.verdict == "untrusted"
    assert "expected" in report.findings[0][1]
