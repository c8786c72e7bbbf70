"""The reference decoder (protocol/reference/decode.py, written from the SPEC alone) reads a real
follow copy's changes as transferd does: its _changes/ output is, segment by segment, the bytes
transferd's own ChangeReader reads, and the cut-over's sequences stream too.

A small database (pure-Python BLAKE3 reads about 1 MB/s), a few INSERT, UPDATE, DELETE and
TRUNCATE statements on a table with a key and one with REPLICA IDENTITY FULL, then a cut-over.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import pytest

from tests.postgres.cluster import Cluster, remove, start_cluster
from tests.postgres.follow import slots
from tests.postgres.test_follow import OWNER, SENDER, caught_up, follower, until_manifest
from tests.protocol.test_reference_decoder import ref
from transferd.core.keys import render_key_file
from transferd.read.changes import ChangeReader, change_refs
from transferd.read.reader import load_manifest, unwrap_key
from transferd.send.follow import FollowResult
from transferd.stores.local import LocalStore


@pytest.fixture(scope="module")
def logical() -> Iterator[Cluster]:
    c = start_cluster(logical=True)
    try:
        yield c
    finally:
        remove(c)


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
    head = max(manifests.iterdir())
    raw = head.read_bytes()
    body = json.loads(raw.split(b"\n")[1])
    body |= {"sequence": body["sequence"] + 1, "previous": hashlib.sha256(raw).hexdigest(),
             "changes": body["changes"] * 2}  # fmt: skip
    text = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    signed = b"transferd-manifest v1\n" + text + b"\n"
    signature = nacl.signing.SigningKey(SENDER.seed).sign(signed).signature
    line = f"sig {SENDER.public().to_text()} {base64.b64encode(signature).decode()}\n"
    (manifests / f"{body['sequence']:020d}").write_bytes(signed + line.encode())
