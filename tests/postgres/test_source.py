"""The PostgreSQL source on its own: what it yields from a real database, in one snapshot."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import asyncpg
import blake3

from tests.postgres.cluster import Cluster
from tests.postgres.dbstate import measure
from transferd.core.source_entry import SourceEntry
from transferd.sources.base import InlineItem
from transferd.sources.postgres.listing import Selection
from transferd.sources.postgres.source import PgOptions, PostgresSource


@dataclass
class Read:
    entry: SourceEntry
    data: bytes


async def read_all(source: PostgresSource) -> dict[bytes, Read]:
    """Every item read to its end and finished, as the pipeline would."""
    out: dict[bytes, Read] = {}
    try:
        async for item in source.items():
            if isinstance(item, InlineItem):
                out[item.entry.path] = Read(item.entry, item.data)
                continue
            parts = [bytes(b) async for b in item.blocks()]  # type: ignore[union-attr]
            data = b"".join(parts)
            entry = await item.finish(len(data), blake3.blake3(data).hexdigest())  # type: ignore[union-attr]
            out[entry.path] = Read(entry, data)
    finally:
        await source.close()
    return out


def extra(entry: SourceEntry) -> dict[str, Any]:
    assert entry.extra is not None
    value: dict[str, Any] = json.loads(entry.extra)
    return value


def test_yields_schema_tables_sequences_and_large_objects(cluster: Cluster, source_db: str) -> None:
    expected = asyncio.run(measure(cluster, source_db))
    got = asyncio.run(read_all(PostgresSource(cluster.url(source_db), PgOptions(jobs=2))))

    assert {b"ddl/pre-data.sql", b"ddl/post-data.sql", b"sequences.sql"} <= set(got)
    assert b"CREATE TABLE public.awkward" in got[b"ddl/pre-data.sql"].data
    assert b"CREATE INDEX awkward_txt" in got[b"ddl/post-data.sql"].data
    assert b"SELECT pg_catalog.lo_create('424244')" in got[b"ddl/pre-data.sql"].data

    tables = {p: r for p, r in got.items() if r.entry.kind == "table"}
    by_name = {(extra(r.entry)["schema"], extra(r.entry)["name"]): r for r in tables.values()}
    assert set(by_name) == set(expected.tables)  # leaves, not partitioned parents
    assert ("public", "measurements") not in by_name
    for key, (rows, digest) in expected.tables.items():
        read = by_name[key]
        assert extra(read.entry)["rows"] == rows, key
        assert read.entry.blake3 == digest, key
        assert extra(read.entry)["format"] == "copy-text"
    odd = by_name[("Odd Schema/with slash", 'Weird "Name" 100%')]
    assert odd.entry.path == b'tables/Odd Schema%2Fwith slash/Weird "Name" 100%25'
    assert by_name[("public", ".")].entry.path == b"tables/public/%2E"
    assert ("public", "measurements_2025_small") in by_name  # a leaf of a leaf
    awkward = extra(by_name[("public", "awkward")].entry)
    columns = [c[0] for c in awkward["columns"]]
    assert "doubled" not in columns  # generated: computed again on restore
    assert ["m", "mood"] in awkward["columns"]
    assert extra(by_name[("public", "no_columns")].entry) ["rows"] == 2  # fmt: skip

    seqs = got[b"sequences.sql"].data.decode()
    assert 'SELECT pg_catalog.setval(\'"public"."standalone_seq"\', 4242, true);' in seqs
    assert '"public"."fresh_seq"\', 1, false);' in seqs
    assert "with_identity_id_seq\"', 2, true);" in seqs

    los = {int(p.rsplit(b"/", 1)[1]): r for p, r in got.items() if p.startswith(b"large-objects/")}
    assert set(los) == set(expected.large_objects) == {424242, 424243, 424244}
    for oid, digest in expected.large_objects.items():
        assert blake3.blake3(los[oid].data).hexdigest() == digest


def test_ranges_on_several_connections_give_the_bytes_of_one_copy(
    cluster: Cluster, source_db: str
) -> None:
    """Seven pages per range: every table of more than seven pages is read as TID ranges, out
    of order on three connections, and must still come out as the plain COPY's bytes."""
    expected = asyncio.run(measure(cluster, source_db))
    options = PgOptions(jobs=3, range_pages=7, buffer_bytes=64 * 1024)
    got = asyncio.run(read_all(PostgresSource(cluster.url(source_db), options)))
    for r in got.values():
        if r.entry.kind == "table":
            e = extra(r.entry)
            assert (e["rows"], r.entry.blake3) == expected.tables[(e["schema"], e["name"])]


def test_a_pinned_snapshot_hides_later_writes(cluster: Cluster, source_db: str) -> None:
    async def run() -> None:
        holder = await asyncpg.connect(cluster.url(source_db))
        await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        snapshot = await holder.fetchval("SELECT pg_export_snapshot()")
        expected = await measure(cluster, source_db, snapshot)
        cluster.psql(source_db, "INSERT INTO pgbench_history VALUES (1, 1, 1, 1, now(), 'x');"
                                "DELETE FROM pgbench_accounts WHERE aid < 500;"
                                "UPDATE awkward SET txt = 'changed'")  # fmt: skip
        source = PostgresSource(cluster.url(source_db), PgOptions(snapshot=snapshot, jobs=2))
        got = await read_all(source)
        for r in got.values():
            if r.entry.kind == "table":
                e = extra(r.entry)
                assert (e["rows"], r.entry.blake3) == expected.tables[(e["schema"], e["name"])]
        ident = source.identity()
        assert ident["snapshot"] == snapshot
        assert ident["snapshot_origin"] == "given"
        await holder.close()

    asyncio.run(run())


def test_identity_and_messages_never_hold_the_password(cluster: Cluster, source_db: str) -> None:
    cluster.psql(source_db, "CREATE ROLE copier LOGIN PASSWORD 's3cret:p@ss' SUPERUSER")
    try:
        url = cluster.url(source_db, "copier", "s3cret%3Ap%40ss")
        source = PostgresSource(url, PgOptions(jobs=1))
        got = asyncio.run(read_all(source))
        assert got
        shown = json.dumps(source.identity()) + source.description + repr(source.info)
        assert "s3cret" not in shown
        assert source.identity()["user"] == "copier"
        assert source.identity()["server_version_num"] >= 140000
    finally:
        cluster.psql(source_db, "DROP ROLE copier")


def test_patterns_choose_tables_as_pg_dump_does(cluster: Cluster, source_db: str) -> None:
    sel = Selection(include_table=("pgbench_*", '"Odd Schema/with slash".*'),
                    exclude_table=("pgbench_h?story",))  # fmt: skip
    got = asyncio.run(read_all(PostgresSource(cluster.url(source_db), PgOptions(selection=sel))))
    tables = sorted(p for p, r in got.items() if r.entry.kind == "table")
    assert tables == [
        b'tables/Odd Schema%2Fwith slash/Weird "Name" 100%25',
        b"tables/public/pgbench_accounts",
        b"tables/public/pgbench_branches",
        b"tables/public/pgbench_tellers",
    ]
    assert not any(p.startswith(b"large-objects/") for p in got)  # pg_dump's rule with -t
    assert b"pgbench_history" not in got[b"ddl/pre-data.sql"].data
    seqs = got[b"sequences.sql"].data
    assert b"Weird" in seqs  # owned by a selected table's serial column
    assert b"standalone_seq" not in seqs


def test_fingerprints_name_the_snapshot(cluster: Cluster, source_db: str) -> None:
    """A new snapshot never lets an entry be reused; the same pinned snapshot does."""

    async def fingerprints(snapshot: str | None) -> dict[bytes, str | None]:
        source = PostgresSource(cluster.url(source_db), PgOptions(snapshot=snapshot, jobs=1))
        out = {}
        try:
            async for item in source.items():
                out[item.entry.path] = item.entry.fingerprint
                if not isinstance(item, InlineItem):
                    break  # the first stream is enough
        finally:
            await source.close()
        return out

    async def run() -> None:
        first, second = await fingerprints(None), await fingerprints(None)
        assert first.keys() == second.keys()
        assert all(first[p] != second[p] for p in first)
        holder = await asyncpg.connect(cluster.url(source_db))
        await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        snapshot = await holder.fetchval("SELECT pg_export_snapshot()")
        assert await fingerprints(snapshot) == await fingerprints(snapshot)
        await holder.close()

    asyncio.run(run())
