"""Restore a PostgreSQL copy into an empty database, and prove the database came back the same."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.postgres.cluster import Cluster
from tests.postgres.dbstate import measure
from tests.postgres.roundtrip import restore_db, send_db
from transferd.core.keys import RecipientIdentity, SenderSecretKey
from transferd.errors import ConfigError, TargetError
from transferd.restore.postgresql import restore_pg
from transferd.sources.postgres import conninfo
from transferd.sources.postgres.listing import Selection
from transferd.sources.postgres.source import PgOptions
from transferd.stores.memory import MemoryStore


def test_restore_gives_the_same_database_back(
    cluster: Cluster,
    source_db: str,
    empty_db: str,
    sender: SenderSecretKey,
    owner: RecipientIdentity,
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    expected = asyncio.run(measure(cluster, source_db))
    asyncio.run(send_db(store, cluster.url(source_db), sender, owner, tmp_path / "state"))

    result = restore_db(store, cluster.url(empty_db), sender, owner)

    got = asyncio.run(measure(cluster, empty_db))
    assert len(expected.tables) > 15
    assert "CREATE TABLE public.awkward" in expected.schema
    assert got.schema == expected.schema
    assert got.tables == expected.tables  # rows and BLAKE3 of every table's COPY text
    assert got.sequences == expected.sequences
    assert got.large_objects == expected.large_objects
    assert result.progress.tables == len(expected.tables)
    assert result.progress.rows == sum(rows for rows, _ in expected.tables.values())
    assert result.progress.large_objects == 3
    # post-data ran: the index, the trigger and the materialized view's rows are there
    assert cluster.psql(empty_db, "SELECT count(*) FROM awkward_counts").strip() != "0"
    assert cluster.psql(empty_db, "SELECT 'awkward_txt'::regclass").strip() == "awkward_txt"


def test_restore_refuses_a_database_that_is_not_empty(
    cluster: Cluster,
    source_db: str,
    empty_db: str,
    sender: SenderSecretKey,
    owner: RecipientIdentity,
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    sel_url = cluster.url(source_db)
    asyncio.run(send_db(store, sel_url, sender, owner, tmp_path / "state"))
    cluster.psql(empty_db, "CREATE TABLE in_the_way (a int)")
    with pytest.raises(TargetError, match=r"is not empty: it has 1 relations") as info:
        restore_db(store, cluster.url(empty_db), sender, owner)
    assert "--force" in (info.value.hint or "")
    assert cluster.psql(empty_db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == (
        "1\n"
    )
    # --force goes on; the objects of the copy then restore beside the one in the way
    restore_db(store, cluster.url(empty_db), sender, owner, force=True)
    assert cluster.psql(empty_db, "SELECT count(*) FROM pgbench_accounts") == "100000\n"


def test_restore_refuses_a_copy_of_a_directory(
    cluster: Cluster,
    empty_db: str,
    sender: SenderSecretKey,
    owner: RecipientIdentity,
    tmp_path: Path,
) -> None:
    from tests.sent import Keys, send_tree

    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a.txt").write_text("a")
    store = MemoryStore()
    send_tree(store, tmp_path / "tree", Keys(sender, owner, owner), tmp_path / "state", job="pg")
    with pytest.raises(ConfigError, match="not of a PostgreSQL database"):
        restore_db(store, cluster.url(empty_db), sender, owner)


def test_a_large_table_loads_on_several_connections_and_verifies_as_the_same_rows(
    cluster: Cluster,
    source_db: str,
    empty_db: str,
    sender: SenderSecretKey,
    owner: RecipientIdentity,
    tmp_path: Path,
) -> None:
    from tests.postgres.test_verify_against import verify_against

    store = MemoryStore()
    expected = asyncio.run(measure(cluster, source_db))
    # the one table alone, so that no other table's COPY holds a connection when it could split
    only = PgOptions(jobs=2, selection=Selection(include_table=("pgbench_accounts",)))
    asyncio.run(send_db(store, cluster.url(source_db), sender, owner, tmp_path / "state", only))
    asyncio.run(restore_pg(
        store=store, job="pg", identity=owner, target=conninfo.parse(cluster.url(empty_db)),
        sender=sender.public(), jobs=3, split_after=1024 * 1024,
    ))  # fmt: skip
    got = asyncio.run(measure(cluster, empty_db))

    # pgbench_accounts (13 MB of rows) was loaded by several COPYs: its rows are not in the
    # copy's order, yet they are the same rows
    table = ("public", "pgbench_accounts")
    assert list(got.tables) == [table]
    assert got.tables[table][0] == expected.tables[table][0] == 100_000
    assert got.tables[table][1] != expected.tables[table][1]
    report = verify_against(store, cluster.url(empty_db), sender, owner)
    assert report.failures == [], report.failures
    assert report.counts["source_tables_reordered"] >= 1  # its rows, in another order
