"""Every vector of protocol/vectors/, applied with transferd's core, in both directions.

A valid vector is opened (parsed, unwrapped, verified) and, when it carries its injected inputs,
produced again byte for byte. An invalid vector must fail with exactly the error class its
``expect`` names. Unknown fields and outcomes fail (vectorfiles.check_vector).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import jsonschema
import pytest

from tests.protocol.vectorfiles import (
    AREAS,
    REPO,
    VECTORS,
    check_file,
    check_vector,
    data,
    vector_files,
)
from transferd.core import (
    catalog,
    catalog_stream,
    changes,
    chunking,
    constants,
    copy,
    envelope,
    jobkey,
    keys,
    manifest,
    objectlist,
    packs,
    pgoutput,
    rowset,
)
from transferd.errors import IntegrityError

FILES = vector_files()


def _check_name(data_: bytes, name: str) -> None:
    """A verifier's first step for any stored object: its bytes hash to its name (SPEC 12)."""
    if packs.object_name(data_) != name:
        raise IntegrityError(f"object {name} does not hash to its name")


# --- one function per area: apply a vector, assert what a valid one promises ------------------

_KINDS: dict[tuple[type, keys.RecipientType | None], tuple[str, str]] = {
    (keys.RecipientKey, keys.X25519): ("recipient", "key"),
    (keys.RecipientIdentity, keys.X25519): ("recipient-identity", "secret"),
    (keys.RecipientKey, keys.HYBRID): ("recipient-pq", "key"),
    (keys.RecipientIdentity, keys.HYBRID): ("recipient-pq-identity", "secret"),
    (keys.SenderPublicKey, None): ("sender", "key"),
    (keys.SenderSecretKey, None): ("sender-secret", "seed"),
}


def apply_keys(v: dict[str, Any]) -> None:
    parse: dict[str, Callable[[str], Any]] = {
        "any": keys.parse_key_text,
        "recipient": keys.parse_recipient,
        "sender": keys.parse_sender_public,
        "key-file": keys.parse_key_file,
    }
    key = parse[v["parse_as"]](v["text"])
    kind, attribute = _KINDS[type(key), getattr(key, "type", None)]
    assert kind == v["kind"]
    assert getattr(key, attribute).hex() == v["key_hex"]
    if "public" in v:
        assert key.public().to_text() == v["public"]
    if v["parse_as"] == "any":
        assert key.to_text() == v["text"]  # the encoding direction


def apply_wrap(v: dict[str, Any]) -> None:
    stanzas = [jobkey.Stanza.from_json(s) for s in v["stanzas"]]
    identity = keys.parse_key_text(v["identity"])
    assert isinstance(identity, keys.RecipientIdentity)
    key_check = jobkey.b64decode_strict(v["key_check"], "key_check")
    job_key = jobkey.unwrap(stanzas, identity, key_check)
    assert job_key.key.hex() == v["job_key"]
    for i, w in enumerate(v.get("wraps", [])):
        recipient = keys.parse_recipient(w["recipient"])
        if "mlkem_seed" in w:
            assert recipient.post_quantum
            _apply_hybrid_wrap(v["stanzas"][i], w, job_key, recipient)
            continue
        stanza = jobkey.wrap(job_key, recipient, bytes.fromhex(w["ephemeral_secret"]))
        assert stanza.to_json() == v["stanzas"][i]
    if "subkeys" in v:
        assert v["subkeys"] == {
            "chunk_id": job_key.chunk_id_key.hex(),
            "chunk_seal": job_key.chunk_key.hex(),
            "catalog_seal": job_key.catalog_key.hex(),
            "pack_header": job_key.pack_header_key.hex(),
            "key_check": job_key.key_check.hex(),
        }


def _apply_hybrid_wrap(
    expected: dict[str, str],
    w: dict[str, str],
    job_key: jobkey.JobKey,
    recipient: keys.RecipientKey,
) -> None:
    """pyca cannot take the encapsulation's randomness, so transferd's own wrap is checked by
    what it can show: a stanza of the right shape, to the right key, that opens to ``job_key``.
    The injected direction is the generator's HPKE (gen/hybrid_seal.py), built from kyber-py
    and pyca primitives: it gives the vector's bytes again, and the vector opened above with
    OpenSSL's HPKE."""
    ours = jobkey.wrap(job_key, recipient, b"")
    assert set(ours.to_json()) == set(expected)
    assert ours.to_json()["recipient"] == expected["recipient"]
    assert jobkey.Stanza.from_json(ours.to_json()) == ours
    seal = _hybrid_seal()
    again = seal(job_key.key, recipient.key, constants.LABEL_MLKEM768X25519_WRAP,
                 bytes.fromhex(w["mlkem_seed"]), bytes.fromhex(w["ephemeral_secret"]))  # fmt: skip
    assert base64.b64encode(again[:1120]).decode() == expected["enc"]
    assert base64.b64encode(again[1120:]).decode() == expected["wrapped"]


def _hybrid_seal() -> Callable[[bytes, bytes, bytes, bytes, bytes], bytes]:
    sys.path.insert(0, str(VECTORS / "gen"))
    try:
        import hybrid_seal  # the generator's module (gen/ is not a package)
    finally:
        sys.path.remove(str(VECTORS / "gen"))
    seal: Callable[[bytes, bytes, bytes, bytes, bytes], bytes] = hybrid_seal.seal
    return seal


def apply_chunk_ids(v: dict[str, Any]) -> None:
    job_key = jobkey.JobKey(bytes.fromhex(v["job_key"]))
    assert job_key.chunk_id_key.hex() == v["chunk_id_key"]
    plaintext = data(v["plaintext"])
    assert blake3.blake3(plaintext).hexdigest() == v["blake3"]
    actual = chunking.chunk_id(job_key.chunk_id_key, plaintext)
    if not hmac.compare_digest(actual, bytes.fromhex(v["chunk_id"])):
        raise IntegrityError("chunk does not hash to its id")


def apply_chunking(v: dict[str, Any]) -> None:
    stream = data(v["input"])
    assert [len(c) for c in chunking.cut(stream)] == v["chunk_lengths"]
    if "feed" in v:
        chunker, pieces, at = chunking.Chunker(), [], 0
        for size in v["feed"]:
            pieces += [bytes(c) for c in chunker.feed(stream[at : at + size])]
            at += size
        pieces += [bytes(c) for c in chunker.finish()]
        assert at == len(stream)
        assert [len(p) for p in pieces] == v["chunk_lengths"]
        assert b"".join(pieces) == stream


def apply_envelope(v: dict[str, Any]) -> None:
    job_key = jobkey.JobKey(bytes.fromhex(v["job_key"]))
    cid, blob = bytes.fromhex(v["chunk_id"]), bytes.fromhex(v["blob"])
    if "nonce" in v:
        payload, nonce = bytes.fromhex(v["payload"]), bytes.fromhex(v["nonce"])
        assert envelope.seal(job_key.chunk_key, cid, payload, nonce) == blob
    if "pack_count" in v:
        packs.check_pack_index(v["pack_index"], v["pack_count"])
    if "pack_size" in v:
        packs.check_blob_location(v["offset"], len(blob), v["pack_size"])
    plaintext = envelope.open_chunk(job_key, cid, blob, v["plain_len"])
    assert plaintext == data(v["plaintext"])


def apply_pack(v: dict[str, Any]) -> None:
    job_key = jobkey.JobKey(bytes.fromhex(v["job_key"]))
    pack = data(v["pack"]) if isinstance(v["pack"], dict) else bytes.fromhex(v["pack"])
    packs.check_pack_size(len(pack))  # known from the object list, before the pack is fetched
    _check_name(pack, v["sha256"])
    entries = packs.parse_pack(job_key.pack_header_key, pack)
    opened = [
        envelope.open_chunk(
            job_key, e.chunk_id, pack[e.offset : e.offset + e.blob_len], e.plain_len
        )
        for e in entries
    ]
    expected = v["entries"]
    assert [
        {"chunk_id": e.chunk_id.hex(), "offset": e.offset, "blob_len": e.blob_len,
         "plain_len": e.plain_len} for e in entries
    ] == expected  # fmt: skip
    assert opened == [data(p) for p in v["plaintexts"]]
    builder = packs.PackBuilder()
    for e in entries:
        builder.add(e.chunk_id, pack[e.offset : e.offset + e.blob_len], e.plain_len)
    assert builder.finish(job_key.pack_header_key, bytes.fromhex(v["header_nonce"])) == pack


def apply_object_list(v: dict[str, Any]) -> None:
    segment = bytes.fromhex(v["segment"])
    _check_name(segment, v["sha256"])
    refs = objectlist.decode_segment(segment)
    assert [r.to_json() for r in refs] == v["entries"]
    assert objectlist.encode_segment(refs) == segment


def apply_catalog(v: dict[str, Any]) -> None:
    job_key = jobkey.JobKey(bytes.fromhex(v["job_key"]))
    segment = bytes.fromhex(v["segment"])
    _check_name(segment, v["sha256"])
    if "nonce" in v:
        nonce, records = bytes.fromhex(v["nonce"]), v["records"].encode("ascii")
        assert catalog.seal_segment(job_key.catalog_key, v["index"], records, nonce) == segment
    opened = catalog.open_segment(job_key.catalog_key, v["index"], segment)
    paths, source_kind = [], None
    for record in opened:  # each record on its own; catalog_stream.json checks their order
        checked = catalog_stream.check_record(record, source_kind)
        if record["t"] == "source":
            source_kind = record["kind"]
        if isinstance(checked, catalog_stream.Head):
            paths.append(checked.path.hex())
    assert opened == [json.loads(line) for line in v["records"].splitlines()]
    assert paths == v["paths"]


def apply_catalog_stream(v: dict[str, Any]) -> None:
    checker, paths = catalog_stream.CatalogChecker(), []
    for n, text in enumerate(v["segments"]):
        for record in catalog.parse_records(text.encode("ascii"), f"segment {n}"):
            checked = checker.feed(record)
            if isinstance(checked, catalog_stream.Head):
                paths.append(checked.path.hex())
    checker.finish()
    assert paths == v["paths"]


def apply_stream(v: dict[str, Any]) -> None:
    """SPEC 13.3 step 5, then 13.4 for each chunk, then 13.5: released bytes against the end."""
    job_key = jobkey.JobKey(bytes.fromhex(v["job_key"]))
    end, chunks = v["end"], v["chunks"]
    if sum(c["plain_len"] for c in chunks) != end["size"]:
        raise IntegrityError("end size is not the sum of the stream's plain lengths")
    released, hasher = [], blake3.blake3()
    for c in chunks:
        piece = envelope.open_chunk(
            job_key, bytes.fromhex(c["chunk_id"]), bytes.fromhex(c["blob"]), c["plain_len"]
        )
        hasher.update(piece)
        released.append(piece)
    if not hmac.compare_digest(hasher.hexdigest(), end["blake3"]):
        raise IntegrityError("the stream does not match the BLAKE3 of its end record")
    assert b"".join(released) == data(v["plaintext"])


def apply_manifest(v: dict[str, Any]) -> None:
    if isinstance(v["manifest"], dict):  # too large to write out: refused by its size
        raw = data(v["manifest"])
        assert hashlib.sha256(raw).hexdigest() == v["sha256"]
        manifest.verify(raw, keys.parse_sender_public(v["expected_sender"]))
        raise AssertionError("a manifest above the size limit was accepted")
    _apply_signed_root(v, manifest, manifest.ManifestBody)


def _apply_signed_root(v: dict[str, Any], module: Any, body_type: Any) -> None:
    """A job manifest (``core.manifest``) or a copy manifest (``core.copy``): the two are signed,
    numbered and chained alike, so their vectors apply alike."""
    raw = v["manifest"].encode("utf-8")
    assert hashlib.sha256(raw).hexdigest() == v["sha256"]
    expected = keys.parse_sender_public(v["expected_sender"])
    current = module.verify(raw, expected)
    if "stored_as" in v:
        at = v["stored_as"]  # with an epoch in lease_epoch.json (SPEC 12.2)
        manifest.check_stored_as(current, at["job"], at["sequence"], at.get("epoch", 0))
    if "object_list_segments" in v:
        listed: list[objectlist.ObjectRef] = []
        for ref, hexed in zip(current.body.object_lists, v["object_list_segments"], strict=True):
            segment = bytes.fromhex(hexed)
            _check_name(segment, ref.name)
            listed += objectlist.decode_segment(segment)
        manifest.check_totals(current.body, listed)
    if "newest_seen" in v:
        manifest.check_not_rolled_back(current, v["newest_seen"])
    if "history" in v:
        previous = None
        for text in v["history"]:
            earlier = module.verify(text.encode("utf-8"), expected)
            module.check_succession(previous, earlier)
            previous = earlier
        module.check_succession(previous, current)
    assert current.body.to_json() == v["body"]
    assert current.digest == v["sha256"]
    secret = keys.parse_key_text(v["sender_secret"])
    assert isinstance(secret, keys.SenderSecretKey)
    assert module.sign(body_type.from_json(v["body"]), secret) == raw


def apply_copy(v: dict[str, Any]) -> None:
    assert read_copy(VECTORS / "copy", v) == v["tree"]


def read_copy(root: Path, v: dict[str, Any]) -> list[dict[str, Any]]:
    """A minimal reader of a store directory built from the core: the tree it describes. The
    newest manifest is the head (SPEC 12.2): highest (epoch, sequence); its chain is followed back
    to 1, and the manifests off it are the superseded ones."""
    job_dir = root / v["store"] / "jobs" / v["job"]
    expected = keys.parse_sender_public(v["expected_sender"])
    stored = {}
    for path in sorted((job_dir / "manifests").iterdir()):
        key = manifest.parse_manifest_name(path.name)
        assert key is not None, path.name
        current = manifest.verify(path.read_bytes(), expected)
        assert current.key == key
        stored[key] = current
    head = manifest.head_of(list(stored))
    assert head is not None
    by_digest = {m.digest: m for m in stored.values()}
    chain = [stored[head]]
    while chain[-1].body.previous is not None:
        chain.append(by_digest[chain[-1].body.previous])
    previous = None
    for current in reversed(chain):
        manifest.check_succession(previous, current)
        previous = current
    off = sorted(k.name for k in set(stored) - {m.key for m in chain})
    assert all(manifest.parse_manifest_name(n).epoch < head.epoch for n in off)  # type: ignore[union-attr]
    assert off == v.get("superseded", [])
    body = stored[head].body
    assert body.sequence == v["newest_sequence"]
    assert body.epoch == v.get("newest_epoch", 0)
    identity = keys.parse_key_file((root / v["identity_file"]).read_text())
    assert isinstance(identity, keys.RecipientIdentity)
    job_key = jobkey.unwrap(list(body.recipients), identity, body.key_check)
    assert job_key.key.hex() == v["job_key"]

    def fetch(ref: objectlist.ObjectRef) -> bytes:
        raw = (job_dir / "objects" / ref.name[:2] / ref.name).read_bytes()
        _check_name(raw, ref.name)
        assert len(raw) == ref.size
        return raw

    pack_refs = [r for ref in body.object_lists for r in objectlist.decode_segment(fetch(ref))]
    records = [
        r
        for i, ref in enumerate(body.catalog)
        for r in catalog.open_segment(job_key.catalog_key, i, fetch(ref))
    ]
    tree: list[dict[str, Any]] = []
    content = b""
    for record in records:
        t = record["t"]
        if t in ("dir", "file", "symlink"):
            path = catalog.safe_path(record)
            entry: dict[str, Any] = {"type": t, **catalog.name_fields("path", path)}
            entry["mtime_ns"] = record["mtime_ns"]
            if t == "symlink":
                entry |= catalog.name_fields("target", catalog.name_from(record, "target"))
            else:
                entry["mode"] = record["mode"]
            tree.append(entry)
            content = b""
        elif t == "chunks":
            for ref in catalog.record_chunks(record):
                pack = fetch(pack_refs[ref.pack_index])
                blob = pack[ref.offset : ref.offset + ref.blob_len]
                content += envelope.open_chunk(job_key, ref.chunk_id, blob, ref.plain_len)
        elif t == "end":
            assert record["size"] == len(content)
            assert record["blake3"] == blake3.blake3(content).hexdigest()
            tree[-1] |= {"size": len(content), "blake3": record["blake3"],
                         "content_b64": base64.b64encode(content).decode()}  # fmt: skip
    assert records[0]["t"] == "source"
    assert records[-1]["t"] == "totals"
    return sorted(tree, key=lambda e: catalog.name_from(e, "path"))


def apply_rowset(v: dict[str, Any]) -> None:
    stream = data(v["input"])
    salt = bytes.fromhex(v["salt"])
    rows = rowset.RowMultiset(salt)
    at = 0
    for size in v.get("feed", [len(stream)]):
        rows.update(stream[at : at + size])
        at += size
    assert at == len(stream)
    digest = rows.hexdigest()  # FormatError: the stream stops inside a row
    assert rows.rows == v["rows"]
    assert digest == v["digest"]
    # the definition, step by step (POSTGRESQL.md 6.2), against the core and the vector
    lines = stream.split(b"\n")[:-1]
    values = [rowset.row_hash(salt, r) for r in lines]
    if "row_hashes" in v:
        assert [x.to_bytes(256, "little").hex() for x in values] == v["row_hashes"]
    total = (sum(values) % 2**2048).to_bytes(256, "little")
    assert total.hex() == v["sum"]
    assert blake3.blake3(total + len(lines).to_bytes(8, "little")).hexdigest() == digest


def apply_copy_secret(v: dict[str, Any]) -> None:
    text = v["text"]
    secret = copy.parse_copy_secret_file(text) if "\n" in text else copy.parse_copy_secret(text)
    assert secret.copy_id(v["copy"]) == v["copy_id"]
    for job in v["jobs"]:
        assert secret.job_key(job["job"]).key.hex() == job["job_key"]
        assert secret.job_id(job["job"]) == job["job_id"]


def apply_copy_manifest(v: dict[str, Any]) -> None:
    _apply_signed_root(v, copy, copy.CopyManifestBody)


def _change_ref(e: dict[str, Any]) -> changes.ChangeRef:
    return changes.ChangeRef(
        bytes.fromhex(e["sha256"]), e["size"], pgoutput.parse_lsn(e["start_lsn"]),
        pgoutput.parse_lsn(e["end_lsn"]), e["cutover"],
    )  # fmt: skip


def apply_changes(v: dict[str, Any]) -> None:
    """A change list, change segment or pgoutput-1 stream (SPEC 11.5, POSTGRESQL.md 8); the
    changes' start against the snapshot's source record; the cut-over's sequences' count."""
    if v["object"] == "change_list":
        data = bytes.fromhex(v["list"])
        _check_name(data, v["sha256"])
        refs = changes.decode_list(data)
        assert [r.to_json() for r in refs] == v["entries"]
        assert changes.encode_list(refs) == data
    elif v["object"] == "change_segment":
        job_key = jobkey.JobKey(bytes.fromhex(v["job_key"]))
        data = bytes.fromhex(v["segment"])
        _check_name(data, v["sha256"])
        ref = _change_ref(v["entry"])
        assert ref.size == len(data)
        segment = changes.open_segment(job_key.catalog_key, ref, data)
        if "records" in v:
            records = changes.records_bytes(v["records"])
            nonce = bytes.fromhex(v["nonce"])
            assert changes.seal_segment(job_key.catalog_key, ref.start_lsn, ref.end_lsn,
                                        records, nonce) == data  # fmt: skip
            assert segment.transactions == v["records"][0]["transactions"]
            assert (segment.cutover is not None) == ref.cutover
    elif v["object"] == "change_origin":
        changes.check_follows_snapshot(v["source"], _change_ref(v["entry"]))
    elif v["object"] == "cutover_sequences":
        changes.check_sequences(bytes.fromhex(v["stream"]), v["sequences"])
    else:
        assert v["object"] == "change_stream", v["object"]
        start, end = pgoutput.parse_lsn(v["start_lsn"]), pgoutput.parse_lsn(v["end_lsn"])
        checker = pgoutput.StreamChecker(start, end)
        for message in pgoutput.frames(bytes.fromhex(v["stream"])):
            checker.feed(message)
        changes.check_counts(checker.finish(), v["transactions"], v["tables"])


def apply_lease_epoch(v: dict[str, Any]) -> None:
    """A manifest written under a lease: applied as manifest.json's, stored_as with its epoch."""
    _apply_signed_root(v, manifest, manifest.ManifestBody)


APPLY: dict[str, Callable[[dict[str, Any]], None]] = {
    "keys": apply_keys,
    "wrap": apply_wrap,
    "chunk_ids": apply_chunk_ids,
    "chunking": apply_chunking,
    "envelope": apply_envelope,
    "pack": apply_pack,
    "object_list": apply_object_list,
    "catalog": apply_catalog,
    "catalog_stream": apply_catalog_stream,
    "stream": apply_stream,
    "manifest": apply_manifest,
    "copy": apply_copy,
    "rowset": apply_rowset,
    "copy_secret": apply_copy_secret,
    "copy_manifest": apply_copy_manifest,
    "changes": apply_changes,
    "lease_epoch": apply_lease_epoch,
}


# --- the tests --------------------------------------------------------------------------------


def test_every_area_has_a_file_and_an_applier() -> None:
    assert {f.area for f in FILES} == set(AREAS) == set(APPLY)


@pytest.mark.parametrize("vf", FILES, ids=lambda f: f.path.name)
def test_file_is_well_formed(vf: Any) -> None:
    check_file(vf)
    schema = json.loads((VECTORS / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(vf.content)


@pytest.mark.parametrize(
    ("area", "vector"),
    [(f.area, v) for f in FILES for v in f.content["vectors"]],
    ids=[f"{f.area}/{v['name']}" for f in FILES for v in f.content["vectors"]],
)
def test_vector(area: str, vector: dict[str, Any]) -> None:
    expected = check_vector(area, vector)
    if expected is None:
        APPLY[area](vector)
        return
    with pytest.raises(expected) as caught:
        APPLY[area](vector)
    assert type(caught.value) is expected, f"{type(caught.value).__name__}: {caught.value}"


def test_regenerating_gives_identical_files(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(REPO)
    subprocess.run(
        [sys.executable, str(VECTORS / "gen" / "generate.py"), str(tmp_path)],
        check=True,
        env=env,
        timeout=120,
    )
    generated = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    committed = {
        p.relative_to(VECTORS)
        for p in VECTORS.rglob("*")
        if p.is_file() and "gen" not in p.relative_to(VECTORS).parts
        and p.name not in ("README.md", "schema.json")
    }  # fmt: skip
    assert generated == committed
    for rel in sorted(generated):
        assert (tmp_path / rel).read_bytes() == (VECTORS / rel).read_bytes(), str(rel)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"surprise": 1}, "unknown field"),
        ({"expect": "header failure"}, "unknown outcome"),
        ({"result": "maybe"}, "unknown result"),
        ({"result": "valid"}, "contradicts"),
    ],
    ids=["unknown_field", "unknown_expect", "unknown_result", "result_contradicts_expect"],
)
def test_loader_and_schema_refuse_what_they_do_not_know(
    change: dict[str, Any], message: str
) -> None:
    """What a newer generator might add cannot pass unnoticed: the run fails, it never skips."""
    content = json.loads((VECTORS / "envelope.json").read_text())
    vector = next(v for v in content["vectors"] if v["result"] == "invalid") | change
    with pytest.raises(AssertionError, match=message):
        check_vector("envelope", vector)
    content["vectors"] = [vector]
    content["number_of_vectors"] = 1
    schema = json.loads((VECTORS / "schema.json").read_text())
    assert not jsonschema.Draft202012Validator(schema).is_valid(content)
