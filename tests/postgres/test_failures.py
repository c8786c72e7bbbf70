"""What goes wrong while a database is copied: each is a clear error, and the job resumes.

- a table dropped after the snapshot, before its COPY: that table fails, the rest is copied;
- a table dropped in the middle of its COPY: the same, the ranges already read are not enough;
- a reading connection killed mid-COPY (pg_terminate_backend): it reconnects, adopts the
  snapshot again and reads that range again, the bytes already handed over checked;
- the snapshot's own connection killed as well: the snapshot is gone, the run stops with an
  error saying so, and the next run takes a new snapshot and uploads only what is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.postgres.cluster import Cluster
from tests.postgres.dbstate import measure
from tests.postgres.roundtrip import restore_db, send_db
from transferd.core.keys import RecipientIdentity, SenderSecretKey
from transferd.errors import IntegrityError, SnapshotGoneError, SourceError, TableGoneError
from transferd.sources.base import Item, one_per_batch
from transferd.sources.postgres.source import PgOptions, PostgresSource, TableItem
from transferd.stores.memory import MemoryStore

SMALL_RANGES = PgOptions(jobs=2, range_pages=16, buffer_bytes=64 * 1024)
"""pgbench_accounts (about 1,640 pages) in about 100 ranges, few of them read ahead."""


async def terminate(cluster: Cluster, db: str, *applications: str) -> int:
    conn = await asyncpg.connect(cluster.url(db))
    try:
        killed: int = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND application_name = ANY($2::text[])",
            db,
            list(applications),
        )
    finally:
        await conn.close()
    return killed


async def read_table(source: PostgresSource, name: str, after_first_block: Any) -> bytes:
    """Read the source's items to ``name``, run ``after_first_block()`` after its first block,
    and return the table's bytes (or raise what reading it raised)."""
    async for item in source.items():
        if isinstance(item, TableItem) and item.table.name == name:
            parts: list[bytes] = []
            async for block in item.blocks():
                if not parts:
                    await after_first_block()
                parts.append(bytes(block))
            return b"".join(parts)
    raise AssertionError(f"no table {name}")


def test_a_table_dropped_after_the_snapshot_fails_alone_and_the_next_run_completes(
    cluster: Cluster,
    source_db: str,
    sender: SenderSecretKey,
    owner: RecipientIdentity,
    tmp_path: Path,
    empty_db: str,
) -> None:
    store = MemoryStore()

    async def first_run() -> list[tuple[bytes, str]]:
        holder = await asyncpg.connect(cluster.url(source_db))
        await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        snapshot = await holder.fetchval("SELECT pg_export_snapshot()")
        cluster.psql(source_db, "DROP TABLE pgbench_tellers")
        options = PgOptions(snapshot=snapshot, jobs=2)
        result, _ = await send_db(store, cluster.url(source_db), sender, owner,
                                  tmp_path / "state", options)  # fmt: skip
        await holder.close()
        return result.failures

    failures = dict(asyncio.run(first_run()))
    assert "was dropped, renamed or rewritten" in failures[b"tables/public/pgbench_tellers"]
    assert "pg_dump failed" in failures[b"ddl/pre-data.sql"]  # pg_dump cannot lock it either
    assert b"tables/public/pgbench_accounts" not in failures
    with pytest.raises(IntegrityError, match=r"has no ddl/pre-data\.sql"):  # a copy, no schema
        restore_db(store, cluster.url(empty_db), sender, owner)

    result, _ = asyncio.run(send_db(store, cluster.url(source_db), sender, owner,
                                    tmp_path / "state"))  # fmt: skip
    assert result.failures == []
    restore_db(store, cluster.url(empty_db), sender, owner)
    expected = asyncio.run(measure(cluster, source_db))
    got = asyncio.run(measure(cluster, empty_db))
    assert got.tables == expected.tables
    assert ("public", "pgbench_tellers") not in got.tables


def test_a_table_dropped_in_the_middle_of_its_copy_is_a_clear_error(
    cluster: Cluster, source_db: str
) -> None:
    async def run() -> None:
        source = PostgresSource(cluster.url(source_db), SMALL_RANGES)
        dropper = await asyncpg.connect(cluster.url(source_db))
        dropping: list[asyncio.Task[str]] = []

        async def drop() -> None:
            # waits for the range being read, then takes the table from under the next one
            dropping.append(asyncio.create_task(dropper.execute("DROP TABLE pgbench_accounts")))

        errors: dict[str, TableGoneError] = {}
        read: list[str] = []
        try:
            async for item in source.items():  # as the pipeline does: one failed item, go on
                if not isinstance(item, TableItem):
                    continue
                try:
                    async for _ in item.blocks():
                        if item.table.name == "pgbench_accounts" and not dropping:
                            await drop()
                except TableGoneError as e:
                    errors[item.table.name] = e
                else:
                    read.append(item.table.name)
            await dropping[0]
        finally:
            await source.close()
            await dropper.close()
        assert list(errors) == ["pgbench_accounts"]
        assert "pgbench_accounts was dropped" in errors["pgbench_accounts"].message
        assert "run the same send again" in (errors["pgbench_accounts"].hint or "")
        assert "awkward" in read  # the tables after it were read

    asyncio.run(run())


def test_a_killed_reading_connection_reconnects_and_reads_the_same_bytes(
    cluster: Cluster, source_db: str
) -> None:
    async def run() -> None:
        expected = await measure(cluster, source_db)
        source = PostgresSource(cluster.url(source_db), SMALL_RANGES)
        killed: list[int] = []

        async def kill() -> None:
            killed.append(await terminate(cluster, source_db, "transferd-copy"))

        try:
            data = await read_table(source, "pgbench_accounts", kill)
        finally:
            await source.close()
        assert killed[0] >= 1
        assert source.reader is not None
        assert source.reader.retries >= 1
        import blake3

        rows, digest = expected.tables[("public", "pgbench_accounts")]
        assert data.count(b"\n") == rows
        assert blake3.blake3(data).hexdigest() == digest

    asyncio.run(run())


class KillMidway:
    """A PostgreSQL source that kills the snapshot's connection and the readers' in the middle
    of a table, as a server restart or an operator's pg_terminate_backend would, once the host
    acknowledged a first pack of the run (so that something is there to be resumed)."""

    independent_streams = False

    def __init__(
        self, inner: PostgresSource, cluster: Cluster, db: str, table: str, store: MemoryStore
    ) -> None:
        self.inner, self.cluster, self.db, self.table = inner, cluster, db, table
        self.store = store
        self.kind, self.description = inner.kind, inner.description

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    async def size_hint(self) -> int | None:
        return await self.inner.size_hint()

    async def close(self) -> None:
        await self.inner.close()

    async def items(self) -> AsyncIterator[Item]:
        async for item in self.inner.items():
            if isinstance(item, TableItem) and item.table.name == self.table:
                yield _Killing(item, self)
            else:
                yield item

    def batches(self) -> AsyncGenerator[Sequence[Item], None]:
        return one_per_batch(self.items())


class _Killing:
    def __init__(self, item: TableItem, killer: KillMidway) -> None:
        self.item, self.killer, self.entry = item, killer, item.entry

    async def blocks(self) -> AsyncIterator[bytes | memoryview]:
        read, killed = 0, False
        async for block in self.item.blocks():
            read += len(block)
            if read > 9 << 20 and not killed:  # past 8 MiB, the chunker has cut its first chunks
                killed = True
                k = self.killer
                deadline = asyncio.get_running_loop().time() + 30
                while not k.store.objects.get("pg"):  # the pipeline packs what it was given
                    assert asyncio.get_running_loop().time() < deadline, "no pack was stored"
                    await asyncio.sleep(0.01)
                await terminate(k.cluster, k.db, "transferd-snapshot", "transferd-copy")
            yield block

    async def finish(self, size: int, blake3: str) -> Any:
        return await self.item.finish(size, blake3)


def test_a_lost_snapshot_stops_the_run_and_the_next_run_resends_little(
    cluster: Cluster,
    source_db: str,
    empty_db: str,
    sender: SenderSecretKey,
    owner: RecipientIdentity,
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    options = PgOptions(jobs=2, range_pages=16, buffer_bytes=256 * 1024)

    async def first_run() -> None:
        from transferd.send.config import PipelineConfig
        from transferd.send.run import send

        source = KillMidway(PostgresSource(cluster.url(source_db), options), cluster, source_db,
                            "pgbench_accounts", store)  # fmt: skip
        try:
            await send(
                source=source, store=store, job="pg", sender=sender, recipients=[owner.public()],
                state_dir=tmp_path / "state", config=PipelineConfig(workers=2, pack_target=4096),
            )  # fmt: skip
        finally:
            await source.close()

    with pytest.raises(SnapshotGoneError, match=r"snapshot .* is gone") as info:
        asyncio.run(first_run())
    assert "run the same send again" in (info.value.hint or "")
    assert isinstance(info.value, SourceError)
    stored_before = sum(len(d) for d in store.objects.get("pg", {}).values())
    assert stored_before > 0  # the packs acknowledged before the stop stay

    result, _ = asyncio.run(send_db(store, cluster.url(source_db), sender, owner,
                                    tmp_path / "state", options))  # fmt: skip
    assert result.failures == []
    assert result.counters.bytes_deduplicated > 0  # chunks the host held were not sent again
    restore_db(store, cluster.url(empty_db), sender, owner)
    expected = asyncio.run(measure(cluster, source_db))
    got = asyncio.run(measure(cluster, empty_db))
    assert got.tables == expected.tables
    assert got.schema == expected.schema
