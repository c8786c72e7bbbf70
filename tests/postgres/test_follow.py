"""Follow mode on real clusters: a live database copied under pgbench, kept in step by its
changes, cut over, restored into another database and proven equal (protocol/POSTGRESQL.md 7-8).

One cluster for the module, started with wal_level=logical (tests/postgres/cluster.py). The
sending side runs in this process through the library (``Follow``), so a test can ask it to cut
over, read its status, or kill its connections; tests/postgres/test_follow_cli.py runs it as an
operator does, in processes.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres.cluster import Cluster
from tests.postgres.follow import TABLES, digests, pgbench, pgbench_init, slots
from transferd.core.jobkey import JobKey
from transferd.core.keys import RecipientIdentity, SenderSecretKey
from transferd.errors import ConfigError
from transferd.read.changes import ChangeReader, change_refs
from transferd.read.reader import load_manifest, unwrap_key
from transferd.report.model import Report
from transferd.restore.postgresql import restore_pg
from transferd.send.follow import Follow, FollowOptions, FollowResult
from transferd.send.followloop import FollowTuning
from transferd.send.pipeline import PipelineConfig
from transferd.sources.postgres import conninfo
from transferd.sources.postgres.source import PgOptions
from transferd.stores.local import LocalStore
from transferd.verify.deepchanges import open_changes
from transferd.verify.run import VerifyOptions, verify_copy

SENDER = SenderSecretKey(bytes(range(32)))
OWNER = RecipientIdentity(bytes(range(1, 33)))
FAST = FollowTuning(segment_bytes=256 * 1024, max_age=1.0, idle=0.3)
_names = itertools.count(1)


@pytest.fixture
def db(logical: Cluster) -> Iterator[str]:
    name = f"f_{os.getpid()}_{next(_names)}"
    pgbench_init(logical, name)
    yield name
    for slot in slots(logical, name):
        logical.psql(name, f"SELECT pg_drop_replication_slot('{slot}')", check=False)
    logical.psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def target(logical: Cluster) -> Iterator[str]:
    name = f"t_{os.getpid()}_{next(_names)}"
    logical.psql("postgres", f"CREATE DATABASE {name} TEMPLATE template0")
    yield name
    logical.psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def follower(c: Cluster, db: str, tmp: Path, **options: object) -> Follow:
    return Follow(
        spec=c.url(db), pg=PgOptions(jobs=2), store=LocalStore(tmp / "store"), job="f",
        sender=SENDER, recipients=[OWNER.public()], state_dir=tmp / "state",
        config=PipelineConfig(workers=2), options=FollowOptions(tuning=FAST, **options),  # type: ignore[arg-type]
    )  # fmt: skip


async def caught_up(f: Follow, c: Cluster, db: str, seconds: float = 60) -> None:
    """Until the follow has published every change committed so far."""
    from transferd.core.pgoutput import parse_lsn

    now = parse_lsn(c.psql(db, "SELECT pg_current_wal_lsn()").strip())
    for _ in range(int(seconds * 10)):
        if f.status.published_lsn >= now and f.status.phase == "follow":
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not caught up with {now:X} after {seconds} s: {f.status}")


def restore(c: Cluster, db: str, tmp: Path, **kwargs: object) -> None:
    asyncio.run(restore_pg(store=LocalStore(tmp / "store"), job="f", identity=OWNER,
                           target=conninfo.parse(c.url(db)), sender=SENDER.public(), jobs=2,
                           **kwargs))  # type: ignore[arg-type]  # fmt: skip


def verify_against(c: Cluster, db: str, tmp: Path) -> list[str]:
    report = asyncio.run(verify_copy(LocalStore(tmp / "store"), "f", SENDER.public(),
                                     VerifyOptions(identity=OWNER, against=c.url(db))))  # fmt: skip
    return [f"{f.kind}: {f.message}" for f in report.failures]


async def until_manifest(f: Follow, sequence: int, seconds: float = 60) -> None:
    for _ in range(int(seconds * 10)):
        if f.status.manifest >= sequence:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no manifest {sequence} after {seconds} s: {f.status}")


@pytest.mark.slow
def test_copy_under_pgbench_cut_over_restored_and_proven_equal(
    logical: Cluster, db: str, target: str, tmp_path: Path
) -> None:
    """pgbench writes during the copy and the follow; the application stops, the operator cuts
    over; the copy restored into another database equals the source, by verify --against."""
    bench = pgbench(logical, db, seconds=5)
    f = follower(logical, db, tmp_path)

    async def main() -> FollowResult:
        run = asyncio.create_task(f.run())
        await until_manifest(f, 3)  # the snapshot, the copy phase's changes, a follow segment
        await asyncio.to_thread(bench.wait)
        f.request_cutover()
        return await run

    result = asyncio.run(main())
    assert result.status.phase == "done"
    assert result.status.transactions > 100
    assert slots(logical, db) == []  # dropped at the cut-over
    restore(logical, target, tmp_path)
    assert digests(logical, target) == digests(logical, db)
    assert verify_against(logical, db, tmp_path) == []
    assert verify_against(logical, target, tmp_path) == []
    logical.psql(db, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 1")
    assert any("pgbench_accounts" in f for f in verify_against(logical, db, tmp_path))
    deep_opens_every_change_segment(tmp_path, result.status.transactions)


def deep_opens_every_change_segment(tmp: Path, transactions: int) -> None:
    """verify --deep reads the change segments as a restore does (verify/deepchanges.py); under
    another job key each segment is one failure naming it, and the rest are still read."""
    store = LocalStore(tmp / "store")
    report = asyncio.run(verify_copy(store, "f", SENDER.public(),
                                     VerifyOptions(identity=OWNER, deep=True)))  # fmt: skip
    assert report.failures == []
    assert report.counts["change_events_opened"] > 2 * transactions  # begin, changes, commit

    signed = asyncio.run(load_manifest(store, "f", sender=SENDER.public()))
    refs = asyncio.run(change_refs(store, signed))
    wrong = Report(
        job="f", store="s", sender="s", sender_fingerprint="f", started="", tool_version=""
    )
    asyncio.run(open_changes(store, signed, JobKey(bytes(32)), wrong))
    assert [f.object for f in wrong.failures] == [r.name for r in refs]
    assert all(f.kind == "chunk" for f in wrong.failures)

    listed = signed.body.changes[0].name  # a change list cut short: named, without the key
    path = tmp / "store" / "jobs" / "f" / "objects" / listed[:2] / listed
    path.write_bytes(path.read_bytes()[:-40])
    keyless = asyncio.run(verify_copy(store, "f", SENDER.public(), VerifyOptions()))
    assert [(f.kind, f.object) for f in keyless.failures] == [("truncated", listed)]


def test_restarted_source_goes_on_from_the_last_published_lsn(
    logical: Cluster, db: str, target: str, tmp_path: Path
) -> None:
    """A clean restart of the source mid-follow: the follow reconnects, PostgreSQL 15 sends
    transactions again that were published, and they are not applied twice."""
    f = follower(logical, db, tmp_path)

    async def main() -> FollowResult:
        run = asyncio.create_task(f.run())
        await until_manifest(f, 1)
        logical.psql(db, "INSERT INTO pgbench_history (tid, bid, aid, delta) "
                     "SELECT 1, 1, g, g FROM generate_series(1, 500) g")  # fmt: skip
        await caught_up(f, logical, db)
        published = f.status.manifest
        await asyncio.to_thread(logical.restart)
        logical.psql(db, "UPDATE pgbench_accounts SET abalance = 7 WHERE aid <= 300")
        await caught_up(f, logical, db)
        assert f.status.manifest > published
        f.request_cutover()
        return await run

    result = asyncio.run(main())
    assert result.status.phase == "done"
    restore(logical, target, tmp_path)
    assert digests(logical, target) == digests(logical, db)


def test_transaction_larger_than_a_segment_is_carried_whole(
    logical: Cluster, db: str, target: str, tmp_path: Path
) -> None:
    """30,000 rows in one transaction (2 MiB of changes, the segment target 256 KiB): one
    segment holds the whole transaction, and TRUNCATE of another table is carried too."""
    logical.psql(db, "CREATE TABLE scratch (k int PRIMARY KEY, v text); "
                 "INSERT INTO scratch SELECT g, 'old' FROM generate_series(1, 100) g")  # fmt: skip
    f = follower(logical, db, tmp_path)

    async def main() -> FollowResult:
        run = asyncio.create_task(f.run())
        await until_manifest(f, 1)
        logical.psql(db, "INSERT INTO pgbench_history (tid, bid, aid, delta) "
                     "SELECT 1, 1, g, g FROM generate_series(1, 30000) g")  # fmt: skip
        logical.psql(db, "TRUNCATE scratch; INSERT INTO scratch VALUES (1, 'new')")
        await caught_up(f, logical, db)
        f.request_cutover()
        return await run

    asyncio.run(main())
    store = LocalStore(tmp_path / "store")

    async def headers() -> list[tuple[int, list[tuple[str, str, int, int, int, int]]]]:
        signed = await load_manifest(store, "f", sender=SENDER.public())
        reader = ChangeReader(store, signed, unwrap_key(signed, OWNER))
        out = []
        for ref in await change_refs(store, signed):
            seg = await reader.segment(ref)
            out.append((seg.transactions, list(seg.tables)))
        return out

    segments = await_(headers())
    big = [s for s in segments if ("public", "pgbench_history", 30000, 0, 0, 0) in s[1]]
    assert len(big) == 1  # one segment, one transaction, every row
    assert big[0][0] == 1
    assert any(("public", "scratch", 1, 0, 0, 1) in s[1] for s in segments)
    restore(logical, target, tmp_path)
    assert digests(logical, target, (*TABLES, "scratch")) == digests(
        logical, db, (*TABLES, "scratch")
    )
    assert logical.psql(target, "SELECT v FROM scratch").strip() == "new"


def test_table_without_a_key_is_refused_with_its_fix(
    logical: Cluster, db: str, tmp_path: Path
) -> None:
    logical.psql(db, "CREATE TABLE loose (a int, b text); CREATE UNLOGGED TABLE scratchpad (a int)")
    f = follower(logical, db, tmp_path)
    with pytest.raises(ConfigError) as caught:
        asyncio.run(f.run())
    hint = caught.value.hint or ""
    assert "is not ready to be followed: 2 prerequisites missing" in caught.value.message
    assert "table public.loose has no primary key" in hint
    assert "ALTER TABLE public.loose REPLICA IDENTITY FULL" in hint
    assert "ALTER TABLE public.scratchpad SET LOGGED" in hint
    assert slots(logical, db) == []  # refused before any slot was made


def await_(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)
