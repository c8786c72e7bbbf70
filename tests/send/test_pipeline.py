"""The send side on its own: a scripted source (tests/send/scripted.py), the memory store, a real
journal, real crypto. What each test shows is in its name; the figures it asserts on are the
pipeline's own counters, the journal and the objects the store holds.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import pytest

from tests.send.scripted import Scripted, ScriptedSource
from tests.sent import Keys
from transferd.core import packs
from transferd.core.constants import CHUNK_MAX, PACK_TARGET
from transferd.errors import PermanentStoreError
from transferd.restore.directory import restore
from transferd.send.config import PipelineConfig
from transferd.send.pipeline import Pipeline
from transferd.send.run import SendResult, send
from transferd.send.state import open_job_state
from transferd.sources.base import Source
from transferd.stores.memory import MemoryStore

MIB = 1 << 20
JOB = "scripted"
LIMIT = 60.0
"""Seconds: a hang fails the test instead of the suite."""


def data(n: int, seed: int) -> bytes:
    """``n`` incompressible bytes, the same for the same seed."""
    return random.Random(seed).randbytes(n)


def run_send(
    store: MemoryStore,
    source: Source,
    keys: Keys,
    state: Path,
    config: PipelineConfig | None = None,
    on_pipeline: object = None,
) -> SendResult:
    async def main() -> SendResult:
        return await asyncio.wait_for(
            send(
                source=source, store=store, job=JOB, sender=keys.sender,
                recipients=[keys.owner.public()], state_dir=state,
                config=config or PipelineConfig(workers=2, pack_target=MIB),
                on_pipeline=on_pipeline,  # type: ignore[arg-type]
            ),
            LIMIT,
        )  # fmt: skip

    return asyncio.run(main())


def journal_rows(state: Path, query: str, *args: object) -> list[tuple[object, ...]]:
    db = sqlite3.connect(state / "jobs" / JOB / "journal.sqlite")
    try:
        return db.execute(query, args).fetchall()
    finally:
        db.close()


def restored(store: MemoryStore, keys: Keys, out: Path) -> dict[str, bytes]:
    asyncio.run(restore(store=store, job=JOB, identity=keys.owner, out=out, fsync=False))
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_chunk_is_sent_once_in_a_run(tmp_path: Path, keys: Keys) -> None:
    big, small = data(3 * MIB, 1), data(3000, 2)
    script = [
        Scripted(b"d", None),
        Scripted(b"d/a", big),
        Scripted(b"d/b", big),  # the same content under another name: its stream lane twin
        Scripted(b"d/s1", small, inline=True),
        Scripted(b"d/s2", small, inline=True),  # and a small file's twin in the same batch
        Scripted(b"d/c", data(2 * MIB, 3)),
    ]
    store = MemoryStore()
    result = run_send(store, ScriptedSource(script), keys, tmp_path / "state")
    c = result.counters
    assert c.bytes_deduplicated == len(big) + len(small)
    assert c.bytes_new == len(big) + len(small) + 2 * MIB
    (chunks,) = journal_rows(tmp_path / "state", "SELECT count(*) FROM chunks")[0]
    assert c.chunks_new == chunks, "every chunk packed once"
    assert c.entries == len(script)
    got = restored(store, keys, tmp_path / "out")
    assert got == {"d/a": big, "d/b": big, "d/s1": small, "d/s2": small, "d/c": script[-1].data}


def test_a_chunk_the_host_holds_is_not_sent_again(tmp_path: Path, keys: Keys) -> None:
    content = data(3 * MIB, 4)
    store = MemoryStore()
    first = run_send(store, ScriptedSource([Scripted(b"a", content)]), keys, tmp_path / "state")
    assert first.counters.packs_sent > 0
    again = ScriptedSource([Scripted(b"a", content), Scripted(b"copy-of-a", content)])
    second = run_send(store, again, keys, tmp_path / "state")
    c = second.counters
    assert again.reads[b"copy-of-a"] == 1, "a new path is read"
    assert (c.chunks_new, c.packs_sent, c.bytes_sent) == (0, 0, 0)
    assert c.bytes_deduplicated == len(content)
    assert restored(store, keys, tmp_path / "out") == {"a": content, "copy-of-a": content}


def test_an_unchanged_entry_is_reused_without_being_read(tmp_path: Path, keys: Keys) -> None:
    script = [Scripted(f"f{i}".encode(), data(300_000, i)) for i in range(6)]
    script += [Scripted(b"small", b"x" * 100, inline=True), Scripted(b"dir")]
    store = MemoryStore()
    run_send(store, ScriptedSource(script), keys, tmp_path / "state")
    changed = [Scripted(s.path, s.data, s.version, inline=s.inline) for s in script]
    changed[2] = Scripted(b"f2", data(300_000, 99), version="2")
    source = ScriptedSource(changed)
    result = run_send(store, source, keys, tmp_path / "state")
    c = result.counters
    assert c.entries_reused == 6, "five files and the small one; the directory is listed"
    assert dict(source.reads) == {b"f2": 1}, "only the changed file is read"
    assert c.bytes_reused == 5 * 300_000 + 100
    assert result.manifest.body.sequence == 2
    got = restored(store, keys, tmp_path / "out")
    assert got["f2"] == changed[2].data
    assert got["f0"] == script[0].data
    assert len(got) == 7


def test_a_file_changed_while_read_is_read_again(tmp_path: Path, keys: Keys) -> None:
    content = data(MIB, 5)
    source = ScriptedSource([Scripted(b"busy", content, changes=2), Scripted(b"calm", b"c")])
    result = run_send(MemoryStore(), source, keys, tmp_path / "state")
    assert source.reads[b"busy"] == 3
    assert result.failures == []
    (size,) = journal_rows(tmp_path / "state", "SELECT size FROM entries WHERE path=?", b"busy")[0]
    assert size == len(content)


@pytest.mark.parametrize("rereads", [1, 3])
def test_a_file_that_keeps_changing_is_given_up_after_n_reads(
    tmp_path: Path, keys: Keys, rereads: int
) -> None:
    source = ScriptedSource([Scripted(b"busy", data(MIB, 6), changes=5), Scripted(b"calm", b"c")])
    store = MemoryStore()
    state = tmp_path / "state"

    async def main() -> tuple[Pipeline, list[tuple[bytes, str]]]:
        s = open_job_state(state, JOB)
        try:
            pipeline = Pipeline(JOB, s.key, store, s.journal, 1, PipelineConfig(workers=2),
                                rereads=rereads)  # fmt: skip
            await asyncio.wait_for(pipeline.run(source), LIMIT)
            return pipeline, pipeline.failures
        finally:
            s.close()

    _, failures = asyncio.run(main())
    assert source.reads[b"busy"] == rereads
    assert failures == [(b"busy", f"busy changed while it was read ({rereads} times)")]
    paths = [r[0] for r in journal_rows(state, "SELECT path FROM entries")]
    assert paths == [b"calm"], "the file given up is not recorded"


class StoredThenLost(MemoryStore):
    """Stores the ``lose``-th pack, then fails as a sender killed before its journal commit
    would: the host holds a pack the journal never heard of."""

    def __init__(self, lose: int) -> None:
        super().__init__()
        self.lose, self.puts = lose, 0
        self.lost: str | None = None

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        await super().put_object(job, name, data)
        self.puts += 1
        if self.puts == self.lose:
            self.lost = name
            raise PermanentStoreError("the sender was killed here")


def test_a_resume_adopts_a_pack_the_journal_never_recorded(tmp_path: Path, keys: Keys) -> None:
    script = [Scripted(f"f{i}".encode(), data(700_000, 10 + i)) for i in range(8)]
    store = StoredThenLost(lose=3)
    state = tmp_path / "state"
    config = PipelineConfig(workers=2, uploads=1, pack_target=512 * 1024)
    with pytest.raises(PermanentStoreError):
        run_send(store, ScriptedSource(script), keys, state, config)
    assert store.lost is not None
    (recorded,) = journal_rows(state, "SELECT count(*) FROM chunks")[0]
    result = run_send(store, ScriptedSource(script), keys, state, config)
    assert result.reconciled.adopted == 1
    in_lost = journal_rows(
        state, "SELECT count(*) FROM chunks c JOIN packs p ON p.id = c.pack_id WHERE p.name=?",
        store.lost,
    )[0][0]  # fmt: skip
    (total,) = journal_rows(state, "SELECT count(*) FROM chunks")[0]
    assert isinstance(in_lost, int)
    assert in_lost > 0
    assert recorded + in_lost + result.counters.chunks_new == total, "nothing sent twice"
    got = restored(store, keys, tmp_path / "out")
    assert got == {s.path.decode(): s.data for s in script}


def test_a_drained_run_resumes_without_reading_again(tmp_path: Path, keys: Keys) -> None:
    """The daemon's stop: drain (no new read, uploads finish, entries recorded), cancel; the
    next run reuses every entry whose chunks the host acknowledged."""
    script = [Scripted(f"f{i}".encode(), data(200_000, 20 + i)) for i in range(8)]
    config = PipelineConfig(workers=2, pack_target=150_000)
    store = MemoryStore()
    state = tmp_path / "state"
    first = ScriptedSource(script, batch=2, hold_after=4)

    async def main() -> None:
        started: list[Pipeline] = []
        task = asyncio.create_task(
            send(
                source=first,
                store=store,
                job=JOB,
                sender=keys.sender,
                recipients=[keys.owner.public()],
                state_dir=state,
                config=config,
                on_pipeline=started.append,
            )
        )
        await first.held.wait()  # four files listed; the listing waits for go_on
        # the counters are not awaitable: poll until the packer has taken the four files
        while started[0].counters.entries < 4:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        assert await started[0].drain(10.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(main(), LIMIT))
    assert not store.manifests, "the drained run published nothing"
    second = ScriptedSource(script, batch=2)
    result = run_send(store, second, keys, state, config)
    assert result.counters.entries_reused == 4
    assert sorted(second.reads) == [f"f{i}".encode() for i in range(4, 8)]
    assert restored(store, keys, tmp_path / "out") == {s.path.decode(): s.data for s in script}


def pack_sizes(store: MemoryStore) -> list[int]:
    return sorted(
        len(d)
        for d in store.objects[JOB].values()
        if d[: packs.PACK_PREFIX_SIZE] == packs.PACK_PREFIX
    )


@pytest.mark.parametrize("target", [PACK_TARGET, 32 * MIB])
def test_packs_close_at_the_target_they_are_given(tmp_path: Path, keys: Keys, target: int) -> None:
    content = data(target + 12 * MIB, 7)
    store = MemoryStore()
    config = PipelineConfig(workers=2, pack_target=target)
    run_send(store, ScriptedSource([Scripted(b"big", content)], block_size=4 * MIB), keys,
             tmp_path / "state", config)  # fmt: skip
    sizes = pack_sizes(store)
    assert len(sizes) == 2
    assert target < sizes[-1] < target + CHUNK_MAX + 700_000
    assert sum(sizes) > len(content)
