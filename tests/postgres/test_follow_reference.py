"""The reference decoder (protocol/reference/decode.py, written from the SPEC alone) reads a real
follow copy's changes as transferd does: its _changes/ output is, segment by segment, the bytes
transferd's own ChangeReader reads, and the cut-over's sequences stream too.

A small database (pure-Python BLAKE3 reads about 1 MB/s), a few INSERT, UPDATE, DELETE and
TRUNCATE statements on a table with a key and one with REPLICA IDENTITY FULL, then a cut-over.
Then two copies of it, signed honestly, that break SPEC 11.5's rules only the key shows: changes
starting a segment after the snapshot (R-CG-FROM-SNAPSHOT), and a cut-over segment sealed again
with one sequence more in its count (R-CG-SEQUENCES); the decoder, verify and restore refuse them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from tests.postgres.cluster import Cluster
from tests.postgres.follow import slots, transferd
from tests.postgres.test_follow import (
    OWNER,
    SENDER,
    caught_up,
    follower,
    until_manifest,
)
from tests.protocol.test_reference_decoder import ref
from transferd.core import canonical, changes
from transferd.core.changes import ChangeRef
from transferd.core.keys import render_key_file
from transferd.core.pgoutput import lsn_text
from transferd.errors import IntegrityError
from transferd.read.changes import ChangeReader, change_refs
from transferd.read.reader import load_manifest, unwrap_key
from transferd.restore.postgresql import restore_pg
from transferd.send.follow import FollowResult
from transferd.sources.postgres import conninfo
from transferd.stores.local import LocalStore
from transferd.verify.run import VerifyOptions, verify_copy


@pytest.fixture
def db(logical: Cluster) -> Iterator[str]:
    name = f"r_{os.getpid()}"
    logical.psql("postgres", f"CREATE DATABASE {name}")
    logical.psql(name, "CREATE TABLE acct (id serial PRIMARY KEY, balance numeric NOT NULL); "
                 "CREATE TABLE note (a int, b text); ALTER TABLE note REPLICA IDENTITY FULL; "
                 "INSERT INTO acct (balance) SELECT g FROM generate_series(1, 50) g; "
                 "INSERT INTO note SELECT g, 'n' || g FROM generate_series(1, 20) g")  # fmt: skip
    yield name
    for slot in slots(logical, name):
        logical.psql(name, f"SELECT pg_drop_replication_slot('{slot}')", check=False)
    logical.psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def transferd_reads(store: LocalStore) -> tuple[list[tuple[str, bytes]], bytes]:
    """(file name the decoder gives it, stream bytes) of each change segment, and the cut-over's
    sequences, as transferd's ChangeReader reads them (its own checks run too: events)."""
    signed = await load_manifest(store, "f", sender=SENDER.public())
    reader = ChangeReader(store, signed, unwrap_key(signed, OWNER))
    streams, sequences = [], b""
    for i, r in enumerate(await change_refs(store, signed)):
        segment = await reader.segment(r)
        [event async for event in reader.events(r, segment)]
        name = f"{i:06d}-{r.start_lsn:016x}-{r.end_lsn:016x}.pgoutput"
        streams.append((name, b"".join([piece async for piece in reader.stream(segment.changes)])))
        if segment.cutover is not None:
            sequences = await reader.text(segment.cutover)
    return streams, sequences


@pytest.mark.slow
def test_decoder_writes_the_change_streams_transferd_reads(
    logical: Cluster, db: str, tmp_path: Path
) -> None:
    f = follower(logical, db, tmp_path)

    async def main() -> FollowResult:
        run = asyncio.create_task(f.run())
        await until_manifest(f, 1)
        logical.psql(db, "INSERT INTO acct (balance) VALUES (1000), (2000)")
        logical.psql(db, "UPDATE acct SET balance = balance + 1 WHERE id <= 5; "
                     "DELETE FROM acct WHERE id = 7")  # fmt: skip
        logical.psql(db, "UPDATE note SET b = 'changed' WHERE a = 3; DELETE FROM note WHERE a = 4")
        logical.psql(db, "TRUNCATE note; INSERT INTO note VALUES (1, 'after')")
        await caught_up(f, logical, db)
        f.request_cutover()
        return await run

    result = asyncio.run(main())
    assert result.status.phase == "done"
    assert result.status.transactions >= 4

    out = tmp_path / "out"
    ref.restore(tmp_path / "store", "f", render_key_file(OWNER, "x"), out,
                SENDER.public().to_text())  # fmt: skip
    streams, sequences = asyncio.run(transferd_reads(LocalStore(tmp_path / "store")))
    changes = out / "_changes"
    written = sorted(p.name for p in changes.iterdir())
    assert written == sorted([name for name, _ in streams] + ["cutover-sequences.sql"])
    for name, stream in streams:
        assert (changes / name).read_bytes() == stream, name
    assert sum(len(stream) for _, stream in streams) > 0
    assert (changes / "cutover-sequences.sql").read_bytes() == sequences
    assert b"""setval('"public"."acct_id_seq"', 52, true);""" in sequences
    counts: dict[str, list[int]] = {}  # the decoder's own counts of the real streams
    for name, stream in streams:
        _, start, end = name.removesuffix(".pgoutput").split("-")
        for schema, table, *n in ref.check_change_stream(stream, int(start, 16), int(end, 16))[1]:
            held = counts.setdefault(f"{schema}.{table}", [0, 0, 0, 0])
            counts[f"{schema}.{table}"] = [a + b for a, b in zip(held, n, strict=True)]
    assert counts == {"public.acct": [2, 5, 1, 0], "public.note": [1, 1, 1, 1]}
    assert (out / "_tables" / "public.acct").is_file()

    refuses_changes_not_following_the_snapshot(logical, db, tmp_path)
    refuses_sequences_of_another_count(logical, db, tmp_path)

    # the chain of WAL ranges runs across a manifest's change lists: a manifest naming its lists
    # twice, signed honestly, names segments after the cut-over (SPEC 11.5 rule 4)
    publish_changes_twice(tmp_path / "store" / "jobs" / "f" / "manifests")
    with pytest.raises(ref.DecodeError, match="after the cut-over") as caught:
        ref.restore(tmp_path / "store", "f", render_key_file(OWNER, "x"), tmp_path / "again",
                    SENDER.public().to_text())  # fmt: skip
    assert caught.value.outcome == "format failure"
    assert not (tmp_path / "again" / "_changes").exists()  # refused before writing anything


def publish_changes_twice(manifests: Path) -> None:
    """A next manifest whose ``changes`` are the head's, twice; signed with the sender's key."""
    publish_changes(manifests, lambda lists: lists * 2)


def publish_changes(manifests: Path, lists: Any) -> None:
    """A next manifest whose ``changes`` are ``lists(head's)``; signed with the sender's key."""
    head = max(manifests.iterdir())
    raw = head.read_bytes()
    body = json.loads(raw.split(b"\n")[1])
    body |= {"sequence": body["sequence"] + 1, "previous": hashlib.sha256(raw).hexdigest(),
             "changes": lists(body["changes"])}  # fmt: skip
    text = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    signed = b"transferd-manifest v1\n" + text + b"\n"
    signature = nacl.signing.SigningKey(SENDER.seed).sign(signed).signature
    line = f"sig {SENDER.public().to_text()} {base64.b64encode(signature).decode()}\n"
    (manifests / f"{body['sequence']:020d}").write_bytes(signed + line.encode())


def _put(store: Path, data: bytes) -> dict[str, Any]:
    """An object written into job f of the local store ``store``: its ref."""
    name = hashlib.sha256(data).hexdigest()
    path = store / "jobs" / "f" / "objects" / name[:2] / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return {"sha256": name, "size": len(data)}


def _decoder_refuses(store: Path, out: Path) -> Any:
    with pytest.raises(ref.DecodeError) as caught:
        ref.restore(store, "f", render_key_file(OWNER, "x"), out, SENDER.public().to_text())
    return caught.value


def _deep(store: Path, against: str | None = None) -> list[str]:
    """verify --deep (or, with ``against``, verify --against): its failures' messages."""
    options = VerifyOptions(identity=OWNER, deep=against is None, against=against)
    report = asyncio.run(verify_copy(LocalStore(store), "f", SENDER.public(), options))
    return [f.message for f in report.failures]


def refuses_changes_not_following_the_snapshot(logical: Cluster, db: str, tmp: Path) -> None:
    """A manifest, signed honestly, whose changes start one segment late: the changes of the
    first segment are missing (SPEC 11.5, R-CG-FROM-SNAPSHOT). Without the key the list still
    tiles; with it, the decoder, verify --deep and restore (exit 13) all refuse it."""
    store = tmp / "late"
    shutil.copytree(tmp / "store", store)
    refs = asyncio.run(change_refs(LocalStore(store), asyncio.run(
        load_manifest(LocalStore(store), "f", sender=SENDER.public()))))  # fmt: skip
    assert len(refs) >= 2
    late = _put(store, changes.encode_list(refs[1:]))
    publish_changes(store / "jobs" / "f" / "manifests", lambda _lists: [late])
    start, consistent = lsn_text(refs[1].start_lsn), lsn_text(refs[0].start_lsn)

    refused = _decoder_refuses(store, tmp / "late-out")
    assert refused.outcome == "integrity failure"
    assert "does not start at the snapshot" in str(refused)
    failures = _deep(store)
    assert any("the changes do not follow the snapshot" in f and f"starts at {start}" in f
               and f"is {consistent}" in f for f in failures), failures  # fmt: skip
    failures = _deep(store, against=logical.url(db))
    assert any(f"the first change segment {refs[1].name} starts at {start}" in f
               for f in failures), failures  # fmt: skip

    identity = tmp / "owner.key"
    identity.write_text(render_key_file(OWNER, "x"))
    identity.chmod(0o600)
    logical.psql("postgres", f"CREATE DATABASE {db}_late")
    try:
        refused_cli = transferd("restore", "--store", store, "--job", "f", "--identity",
                                identity, "--sender", SENDER.public().to_text(), "--to",
                                logical.url(f"{db}_late"), "-j", "2")  # fmt: skip
        assert refused_cli.returncode == IntegrityError.exit_code, refused_cli.stderr
        assert "transferd: error: the first change segment" in refused_cli.stderr
        assert f"the changes committed between {consistent} and {start} are missing" in (
            refused_cli.stderr
        )
        assert "transferd: hint: the copy's changes do not continue its snapshot" in (
            refused_cli.stderr
        )
        assert "Traceback" not in refused_cli.stderr
        tables = logical.psql(f"{db}_late", "SELECT count(*) FROM pg_tables WHERE schemaname "
                              "NOT IN ('pg_catalog', 'information_schema')").strip()  # fmt: skip
        assert tables == "0"  # refused before the snapshot was loaded, not after
    finally:
        logical.psql("postgres", f"DROP DATABASE IF EXISTS {db}_late WITH (FORCE)")


def refuses_sequences_of_another_count(logical: Cluster, db: str, tmp: Path) -> None:
    """The cut-over segment sealed again, with the key, under a cutover record counting one
    sequence more than its stream's setval lines (SPEC 11.5, R-CG-SEQUENCES)."""
    store = tmp / "sequences"
    shutil.copytree(tmp / "store", store)
    local = LocalStore(store)
    signed = asyncio.run(load_manifest(local, "f", sender=SENDER.public()))
    key = unwrap_key(signed, OWNER)
    refs = asyncio.run(change_refs(local, signed))
    last = refs[-1]
    assert last.cutover
    data = (store / "jobs" / "f" / "objects" / last.name[:2] / last.name).read_bytes()
    entry = (last.name, last.size, last.start_lsn, last.end_lsn, True)
    records = ref.open_change_segment(key.catalog_key, entry, data)
    cutover = next(r for r in records if r["t"] == "cutover")
    announced = cutover["sequences"] + 1
    cutover["sequences"] = announced
    plain = b"".join(canonical.dumps(r) + b"\n" for r in records)
    sealed = changes.seal_segment(key.catalog_key, last.start_lsn, last.end_lsn, plain,
                                  os.urandom(24))  # fmt: skip
    segment = _put(store, sealed)
    resealed = ChangeRef(bytes.fromhex(segment["sha256"]), len(sealed), last.start_lsn,
                         last.end_lsn, cutover=True)  # fmt: skip
    listed = _put(store, changes.encode_list([*refs[:-1], resealed]))
    publish_changes(store / "jobs" / "f" / "manifests", lambda _lists: [listed])

    refused = _decoder_refuses(store, tmp / "sequences-out")
    assert refused.outcome == "integrity failure"
    assert "sequences stream holds another count" in str(refused)
    failures = _deep(store)
    message = f"its cutover record says {announced}"
    assert any("setval lines" in f and message in f for f in failures), failures
    logical.psql("postgres", f"CREATE DATABASE {db}_seq")
    try:
        with pytest.raises(IntegrityError, match=f"setval lines, {message}"):
            asyncio.run(restore_pg(store=local, job="f", identity=OWNER, sender=SENDER.public(),
                                   target=conninfo.parse(logical.url(f"{db}_seq"))))  # fmt: skip
    finally:
        logical.psql("postgres", f"DROP DATABASE IF EXISTS {db}_seq WITH (FORCE)")
