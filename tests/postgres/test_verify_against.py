"""``verify --against postgresql://…``: the same rows in another physical order are the same
table; other rows with the same count are not; sequences behind the copy differ.

Every test copies the template database (pgbench and awkward.sql), then changes the database the
way an application or an administrator would, and compares it with the copy.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.postgres.cluster import Cluster
from tests.postgres.roundtrip import send_db
from tests.postgres.test_cli import keys, send_args, transferd  # noqa: F401 - keys: a fixture
from transferd.core import manifest
from transferd.core.keys import RecipientIdentity, SenderSecretKey
from transferd.report.model import Report
from transferd.sources.postgres.listing import Selection
from transferd.sources.postgres.source import PgOptions
from transferd.stores.memory import MemoryStore
from transferd.verify.run import VerifyOptions, verify_copy


def verify_against(
    store: MemoryStore, url: str, sender: SenderSecretKey, owner: RecipientIdentity
) -> Report:
    options = VerifyOptions(workers=2, identity=owner, against=url)
    return asyncio.run(verify_copy(store, "pg", sender.public(), options))


def failures(report: Report) -> dict[str, str]:
    """{what the failure names (table or sequence): kind and message}."""
    out = {}
    for f in report.failures:
        words = f.message.split(" ")
        name = words[1].rstrip(":") if words[0] in ("table", "sequence") else f.message
        out[name] = f"{f.kind}: {f.message}"
    return out


def test_rows_moved_by_vacuum_full_cluster_and_updates_are_the_same_rows(
    cluster: Cluster,
    source_db: str,
    sender: SenderSecretKey,
    owner: RecipientIdentity,
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    url = cluster.url(source_db)
    asyncio.run(send_db(store, url, sender, owner, tmp_path / "state"))
    before = verify_against(store, url, sender, owner)
    assert before.failures == [], before.failures
    assert before.counts.get("source_tables_reordered", 0) == 0

    # updates that change nothing move the new row versions to the end of the (full) heap, and
    # VACUUM FULL keeps that order; CLUSTER rewrites a table in an index's order
    cluster.psql(source_db, "UPDATE pgbench_accounts SET abalance = abalance WHERE aid % 997 = 0")
    cluster.psql(source_db, "VACUUM FULL pgbench_accounts")
    cluster.psql(source_db, "CREATE INDEX tellers_desc ON pgbench_tellers (tid DESC)")
    cluster.psql(source_db, "CLUSTER pgbench_tellers USING tellers_desc")
    cluster.psql(source_db, "UPDATE with_identity SET v = v WHERE v = 'one'")
    cluster.psql(source_db, "SELECT nextval('standalone_seq')")  # the database was used since

    report = verify_against(store, url, sender, owner)

    assert report.failures == [], [f.message for f in report.failures]
    assert report.exit_code == 0
    assert report.counts["source_tables_reordered"] == 3
    note = report.notes["matches-source"]
    assert "3 with the same rows as the copy in another physical order" in note
    for table in ("public.pgbench_accounts", "public.pgbench_tellers", "public.with_identity"):
        assert table in note
    assert report.counts["source_sequences"] == 5
    assert report.counts["source_sequences_advanced"] == 1
    assert "1 sequences ahead of the copy's values" in note


def test_other_rows_with_the_same_count_differ_and_say_how(
    cluster: Cluster,
    source_db: str,
    sender: SenderSecretKey,
    owner: RecipientIdentity,
    tmp_path: Path,
) -> None:
    cluster.psql(source_db, "CREATE TABLE dup (v text); INSERT INTO dup VALUES ('a'), ('a'), ('b')")
    store = MemoryStore()
    url = cluster.url(source_db)
    asyncio.run(send_db(store, url, sender, owner, tmp_path / "state"))

    # one value of one row, keeping the row count and the COPY text's size
    cluster.psql(source_db, "UPDATE pgbench_tellers SET tbalance = 7 WHERE tid = 5")
    # a duplicate swapped for another row: the same set of rows, not the same multiset
    cluster.psql(source_db, "UPDATE dup SET v = 'b' WHERE ctid = "
                 "(SELECT min(ctid) FROM dup WHERE v = 'a')")  # fmt: skip
    # the same count, another size: no second pass needed
    cluster.psql(source_db, "UPDATE pgbench_branches SET filler = 'x'")
    # sequences: one behind the copy (restored from an older copy, or reset), one only in the
    # database, one only in the copy
    cluster.psql(source_db, "SELECT setval('standalone_seq', 100)")
    cluster.psql(source_db, "CREATE SEQUENCE newer_seq")
    cluster.psql(source_db, "DROP SEQUENCE fresh_seq")

    report = verify_against(store, url, sender, owner)

    found = failures(report)
    assert set(found) == {
        "public.pgbench_tellers", "public.dup", "public.pgbench_branches",
        "public.standalone_seq", "public.newer_seq", "public.fresh_seq",
    }, found  # fmt: skip
    assert found["public.pgbench_tellers"] == (
        "differs: table public.pgbench_tellers has the copy's 10 rows and size but not the same "
        "rows (their multiset digests differ)"
    )
    assert "3 rows and size but not the same rows" in found["public.dup"]
    assert found["public.pgbench_branches"].startswith(
        "differs: table public.pgbench_branches has the copy's 1 row but other content ("
    )
    assert found["public.standalone_seq"] == (
        "differs: sequence public.standalone_seq is behind the copy: the next value it hands out "
        "is 101 in the database, 4243 after restoring the copy"
    )
    assert found["public.newer_seq"].startswith("source-only: sequence public.newer_seq: the ")
    assert found["public.fresh_seq"] == (
        "copy-only: sequence public.fresh_seq: the copy has this sequence, the database does not"
    )
    tellers = next(f for f in report.failures if f.path == "tables/public/pgbench_tellers")
    assert tellers.actual is not None
    assert tellers.expected is not None
    assert tellers.actual["rows_multiset"] != tellers.expected["rows_multiset"]
    assert tellers.actual["rows"] == tellers.expected["rows"] == 10
    salt = tellers.actual["rows_multiset_salt"]
    assert len(bytes.fromhex(salt)) == 32
    assert tellers.expected["rows_multiset_salt"] == salt
    assert report.exit_code == 24
    assert report.counts.get("source_tables_reordered", 0) == 0


def test_a_damaged_copy_read_for_its_rows_is_reported_not_raised(
    cluster: Cluster,
    source_db: str,
    sender: SenderSecretKey,
    owner: RecipientIdentity,
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    url = cluster.url(source_db)
    options = PgOptions(jobs=2, selection=Selection(include_table=("pgbench_tellers",)))
    asyncio.run(send_db(store, url, sender, owner, tmp_path / "state", options))
    cluster.psql(source_db, "UPDATE pgbench_tellers SET tbalance = tbalance WHERE tid < 4")
    (newest,) = [manifest.parse(m).body for m in store.manifests["pg"].values()]
    readable = {r.name for r in (*newest.catalog, *newest.object_lists)}
    objects = store.objects["pg"]
    for name, data in list(objects.items()):  # a bit flipped every 61 bytes of every pack
        if name not in readable:
            objects[name] = bytes(b ^ 1 if i % 61 == 60 else b for i, b in enumerate(data))

    report = verify_against(store, url, sender, owner)

    messages = [f.message for f in report.failures]
    assert any("the copy's streams could not be read to compare their rows" in m for m in messages)
    assert (
        "table public.pgbench_tellers has the copy's 10 rows and size but another BLAKE3, and its "
        "rows could not be compared"
    ) in messages
    assert report.verdict == "altered"


def test_the_command_reports_moved_and_changed_rows(
    cluster: Cluster,
    source_db: str,
    keys: dict[str, str],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    url = cluster.url(source_db)
    sent = transferd(*send_args(keys, url, tmp_path / "store", tmp_path / "state",
                                "-t", "pgbench_tellers", "-t", "pgbench_accounts"))  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    verify = ["verify", "--store", str(tmp_path / "store"), "--job", "db", "--sender",
              keys["sender"], "--identity", keys["owner_key"], "--seen-state",
              str(tmp_path / "seen"), "--json", "--against", url]  # fmt: skip

    cluster.psql(source_db, "UPDATE pgbench_tellers SET tbalance = tbalance WHERE tid < 4")
    same = transferd(*verify)
    assert same.returncode == 0, same.stdout + same.stderr
    report = json.loads(same.stdout.splitlines()[-1])
    assert report["counts"]["source_tables_reordered"] == 1
    assert "public.pgbench_tellers" in report["checks"][-1]["detail"]

    cluster.psql(source_db, "UPDATE pgbench_accounts SET abalance = 1 WHERE aid = 77")
    moved_on = transferd(*verify)
    assert moved_on.returncode == 24, moved_on.stderr
    assert "Traceback" not in moved_on.stderr
    (failure,) = json.loads(moved_on.stdout.splitlines()[-1])["failures"]
    assert failure["message"] == (
        "table public.pgbench_accounts has the copy's 100,000 rows and size but not the same "
        "rows (their multiset digests differ)"
    )
    human = transferd(*[a for a in verify if a != "--json"])
    assert human.returncode == 24
    assert "public.pgbench_accounts has the copy's 100,000 rows" in human.stdout + human.stderr
    assert "Traceback" not in human.stderr
