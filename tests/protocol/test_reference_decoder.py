"""protocol/reference/decode.py, the decoder written from SPEC.md alone, agrees with transferd.

It must: import nothing from transferd; give the outcome every vector it can apply names (it has no
chunker and does not parse pack headers, so chunking.json and pack.json are not its); restore the
stored copy of protocol/vectors/copy/ to the tree copy.json describes; and restore a copy written
here with transferd's core functions, several packs, segments and manifests in all. Its reading of
a real follow copy's changes is tests/postgres/test_follow_reference.py.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import blake3
import nacl.bindings
import pytest
import zstandard

from tests.protocol.vectorfiles import EXPECT, REPO, VECTORS, check_vector, data, vector_files
from transferd.core import canonical, catalog, chunking, envelope, jobkey, manifest, objectlist
from transferd.core.keys import RecipientIdentity, SenderSecretKey, render_key_file
from transferd.core.packs import PackBuilder, object_name

DECODER = REPO / "protocol" / "reference" / "decode.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("transferd_reference_decode", DECODER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _load()


def test_imports_only_the_standard_library_pynacl_zstandard_and_cryptography() -> None:
    tree = ast.parse(DECODER.read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0] for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }  # fmt: skip
    assert imported - set(sys.stdlib_module_names) == {"nacl", "zstandard", "cryptography"}
    probe = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('transferd', 'blake3')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(DECODER)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# --- vectors ----------------------------------------------------------------------------------


def _name_check(raw: bytes, sha: str) -> None:
    if hashlib.sha256(raw).hexdigest() != sha:
        ref.fail("integrity failure", "object does not hash to its name")


def keys_vector(v: dict[str, Any]) -> None:
    want = {"any": None, "recipient": "recipient", "sender": "sender"}
    if v["parse_as"] == "key-file":
        kind, key = ref.read_key_file(v["text"])
    else:
        kind, key = ref.decode_key(v["text"], want[v["parse_as"]])
    assert (kind, key.hex()) == (v["kind"], v["key_hex"])
    if "public" in v:
        assert ref.public_text(kind, key) == v["public"]
    if v["parse_as"] == "any":
        hrp = {"recipient": "tdr", "sender": "tds", "recipient-identity": "td-secret-recipient-",
               "sender-secret": "td-secret-sender-", "recipient-pq": "tdrpq",
               "recipient-pq-identity": "td-secret-recipient-pq-"}[kind]  # fmt: skip
        text = ref.bech32_encode(hrp, key)
        assert (text.upper() if kind in ref._SECRET else text) == v["text"]


def wrap_vector(v: dict[str, Any]) -> None:
    kind, identity = ref.decode_key(v["identity"])
    assert kind in ("recipient-identity", "recipient-pq-identity")
    key_check = ref.b64(v["key_check"], 16, "key_check")
    assert ref.unwrap(v["stanzas"], kind, identity, key_check).hex() == v["job_key"]


def chunk_ids_vector(v: dict[str, Any]) -> None:
    k_id = ref.kdf(bytes.fromhex(v["job_key"]), "transferd v1 chunk id")
    assert k_id.hex() == v["chunk_id_key"]
    plaintext = data(v["plaintext"])
    assert ref.blake3(plaintext).hex() == v["blake3"]
    if ref.blake3(plaintext, k_id).hex() != v["chunk_id"]:
        ref.fail("integrity failure", "chunk does not hash to its id")


def envelope_vector(v: dict[str, Any]) -> None:
    keys = ref.subkeys(bytes.fromhex(v["job_key"]))
    cid, blob = bytes.fromhex(v["chunk_id"]), bytes.fromhex(v["blob"])
    if "pack_size" in v:
        packs = [("", v["pack_size"])] * v.get("pack_count", 1)
        ref.check_location(v.get("pack_index", 0), v["offset"], len(blob), packs)
    assert ref.open_chunk(keys, cid, blob, v["plain_len"]) == data(v["plaintext"])


def object_list_vector(v: dict[str, Any]) -> None:
    segment = bytes.fromhex(v["segment"])
    _name_check(segment, v["sha256"])
    entries = [{"sha256": s, "size": n} for s, n in ref.parse_object_list(segment)]
    assert entries == v["entries"]


def catalog_vector(v: dict[str, Any]) -> None:
    segment = bytes.fromhex(v["segment"])
    _name_check(segment, v["sha256"])
    keys = ref.subkeys(bytes.fromhex(v["job_key"]))
    records = ref.open_catalog(keys["catalog"], v["index"], segment)
    kind = None
    for n, record in enumerate(records):  # each on its own; catalog_stream.json has their order
        ref.check_record(record, f"record {n}", kind)
        kind = record["kind"] if record["t"] == "source" else kind
    assert records == [json.loads(line) for line in v["records"].splitlines()]
    heads = ("dir", "file", "symlink", "table")
    assert [ref.safe_path(r).hex() for r in records if r["t"] in heads] == v["paths"]


def catalog_stream_vector(v: dict[str, Any]) -> None:
    walk, paths = ref.CatalogWalk(), []
    for i, text in enumerate(v["segments"]):
        for n, line in enumerate(text.encode("ascii").split(b"\n")[:-1]):
            record = walk.feed(ref.canonical_loads(line, f"record {n}"), f"segment {i} record {n}")
            if record["t"] in ("dir", "file", "symlink", "table"):
                paths.append(ref.safe_path(record).hex())
    walk.finish()
    assert paths == v["paths"]


def stream_vector(v: dict[str, Any]) -> None:
    keys = ref.subkeys(bytes.fromhex(v["job_key"]))
    if sum(c["plain_len"] for c in v["chunks"]) != v["end"]["size"]:
        ref.fail("integrity failure", "end size is not the sum of the plain lengths")
    content = b"".join(
        ref.open_chunk(keys, bytes.fromhex(c["chunk_id"]), bytes.fromhex(c["blob"]), c["plain_len"])
        for c in v["chunks"]
    )
    if ref.blake3(content).hex() != v["end"]["blake3"]:
        ref.fail("integrity failure", "the stream does not match its end record's BLAKE3")
    assert content == data(v["plaintext"])


def manifest_vector(v: dict[str, Any]) -> None:
    raw = data(v["manifest"]) if isinstance(v["manifest"], dict) else v["manifest"].encode()
    body = ref.verify_manifest(raw, v["expected_sender"])
    if "stored_as" in v:
        ref.check_stored_as(body, v["stored_as"]["job"], v["stored_as"]["sequence"])
    if "object_list_segments" in v:
        listed = []
        for (sha, _size), hexed in zip(
            ref._refs(body["object_lists"], ""), v["object_list_segments"], strict=True
        ):
            segment = bytes.fromhex(hexed)
            _name_check(segment, sha)
            listed += ref.parse_object_list(segment)
        ref.check_totals(body, listed)
    if body["sequence"] < v.get("newest_seen", 0):
        ref.fail("rollback", "a manifest older than the newest seen")
    if "history" in v:
        chain = [text.encode("utf-8") for text in v["history"]] + [raw]
        assert ref.check_chain(chain, v["expected_sender"]) == body
    assert body == v["body"]


def lease_epoch_vector(v: dict[str, Any]) -> None:
    """A manifest written under a lease (SPEC 12.2): read where stored_as says, chained."""
    raw = v["manifest"].encode()
    body = ref.verify_manifest(raw, v["expected_sender"])
    at = v["stored_as"]
    ref.check_stored_as(body, at["job"], at["sequence"], at["epoch"])
    if "history" in v:
        chain = [text.encode("utf-8") for text in v["history"]] + [raw]
        assert ref.check_chain(chain, v["expected_sender"]) == body
    assert body == v["body"]


def _entry(e: dict[str, Any]) -> tuple[str, int, int, int, bool]:
    lsns = ref.parse_lsn(e["start_lsn"], "start_lsn"), ref.parse_lsn(e["end_lsn"], "end_lsn")
    return e["sha256"], e["size"], *lsns, e["cutover"]


def changes_vector(v: dict[str, Any]) -> None:
    """A change list, a change segment (opened, and sealed again from its records and nonce when
    given), or a pgoutput-1 stream checked against a segment header (SPEC 11.5, POSTGRESQL.md 8);
    the changes' first entry against the source record; the cut-over's sequences' count."""
    if v["object"] == "change_list":
        data = bytes.fromhex(v["list"])
        _name_check(data, v["sha256"])
        entries = ref.parse_change_list(data)
        as_json = [{"sha256": sha, "size": size, "start_lsn": ref.lsn_text(start),
                    "end_lsn": ref.lsn_text(end), "cutover": cut}
                   for sha, size, start, end, cut in entries]  # fmt: skip
        assert as_json == v["entries"]
        assert [_entry(e) for e in v["entries"]] == entries
    elif v["object"] == "change_segment":
        data = bytes.fromhex(v["segment"])
        _name_check(data, v["sha256"])
        entry = _entry(v["entry"])
        assert (entry[0], entry[1]) == (v["sha256"], len(data))
        k_catalog = ref.subkeys(bytes.fromhex(v["job_key"]))["catalog"]
        records = ref.open_change_segment(k_catalog, entry, data)
        if "records" in v:
            assert records == v["records"]
            plain = b"".join(
                json.dumps(r, sort_keys=True, separators=(",", ":")).encode() + b"\n"
                for r in records
            )
            ad = b"transferd v1 change segment\x01" + entry[2].to_bytes(8) + entry[3].to_bytes(8)
            packed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                data[29:], ad, data[5:29], k_catalog
            )
            assert zstandard.ZstdDecompressor().decompress(packed) == plain
            assert data[5:29].hex() == v["nonce"]
    elif v["object"] == "change_origin":
        ref.check_changes_origin(v["source"], _entry(v["entry"]))
    elif v["object"] == "cutover_sequences":
        ref.check_cutover_sequences(bytes.fromhex(v["stream"]), v["sequences"])
    else:
        assert v["object"] == "change_stream", v["object"]
        start, end = ref.parse_lsn(v["start_lsn"], "start"), ref.parse_lsn(v["end_lsn"], "end")
        held = ref.check_change_stream(bytes.fromhex(v["stream"]), start, end)
        ref.check_change_counts(held, v["transactions"], v["tables"])


APPLY = {
    "keys": keys_vector,
    "wrap": wrap_vector,
    "chunk_ids": chunk_ids_vector,
    "envelope": envelope_vector,
    "object_list": object_list_vector,
    "catalog": catalog_vector,
    "catalog_stream": catalog_stream_vector,
    "stream": stream_vector,
    "manifest": manifest_vector,
    "lease_epoch": lease_epoch_vector,
    "changes": changes_vector,
}


def _params() -> list[Any]:
    params = []
    for vf in vector_files():
        for v in vf.content["vectors"]:
            if vf.area not in APPLY:
                continue
            big = any(
                isinstance(spec, dict) and spec.get("length", 0) > 1024 * 1024
                for spec in (v.get("plaintext"), v.get("input"))
            )  # pure-Python BLAKE3 runs at about 1 MB/s
            marks = [pytest.mark.slow] if big else []
            params.append(pytest.param(vf.area, v, id=f"{vf.area}/{v['name']}", marks=marks))
    return params


@pytest.mark.parametrize(("area", "vector"), _params())
def test_decoder_agrees_with_vector(area: str, vector: dict[str, Any]) -> None:
    check_vector(area, vector)
    if vector["expect"] == "success":
        APPLY[area](vector)
        return
    with pytest.raises(ref.DecodeError) as caught:
        APPLY[area](vector)
    assert caught.value.outcome == vector["expect"], str(caught.value)
    assert vector["expect"] in EXPECT


def test_pure_python_blake3_matches_the_library() -> None:
    for length in (0, 1, 64, 65, 1024, 1025, 2048, 3073, 4096, 16385):
        message = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
        key = hashlib.sha256(b"k").digest()
        assert ref.blake3(message) == blake3.blake3(message).digest()
        assert ref.blake3(message, key) == blake3.blake3(message, key=key).digest()


# --- restoring a stored copy --------------------------------------------------------------------


def tree_of(root: Path) -> list[dict[str, Any]]:
    """The restored tree in copy.json's form, read back from the disk with lstat."""
    entries = []
    top = bytes(root)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, top)
            st = os.lstat(full)
            entry: dict[str, Any] = {"type": "", **catalog.name_fields("path", rel)}
            entry["mtime_ns"] = st.st_mtime_ns
            if stat.S_ISLNK(st.st_mode):
                entry |= {"type": "symlink", **catalog.name_fields("target", os.readlink(full))}
            else:
                entry |= {"type": "dir" if stat.S_ISDIR(st.st_mode) else "file"}
                entry["mode"] = stat.S_IMODE(st.st_mode)
            if stat.S_ISREG(st.st_mode):
                content = Path(os.fsdecode(full)).read_bytes()
                entry |= {"size": len(content), "blake3": blake3.blake3(content).hexdigest(),
                          "content_b64": base64.b64encode(content).decode()}  # fmt: skip
            entries.append(entry)
    return sorted(entries, key=lambda e: catalog.name_from(e, "path"))


def _run_decoder(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DECODER), *map(str, args)], capture_output=True, text=True, timeout=120
    )


COPIES = json.loads((VECTORS / "copy" / "copy.json").read_text())["vectors"]


@pytest.mark.parametrize("v", COPIES, ids=[v["name"] for v in COPIES])
def test_restores_the_copy_vector(tmp_path: Path, v: dict[str, Any]) -> None:
    """Both stored jobs: one rekeyed from A to B and A, one from A to a hybrid recipient alone."""
    copy = VECTORS / "copy"
    result = _run_decoder(copy / v["store"], v["job"], copy / v["identity_file"], tmp_path / "out",
                          "--sender", v["expected_sender"])  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert tree_of(tmp_path / "out") == v["tree"]


def test_refuses_the_copy_vector_for_another_sender(tmp_path: Path) -> None:
    copy = VECTORS / "copy"
    other = SenderSecretKey(bytes(32)).public().to_text()
    result = _run_decoder(copy / "store", "tiny", copy / "identity.txt", tmp_path / "out",
                          "--sender", other)  # fmt: skip
    assert result.returncode == 1
    assert "signature failure: manifest signed by tds1" in result.stderr


# A copy written with transferd's core: files cut with the core's chunker, several packs (closed
# after two chunks, which a real sender does only at 16 MiB), two object-list segments, two catalog
# segments split inside a stream, a duplicated file stored once, and a rekeyed second manifest.

IDENTITY = RecipientIdentity(hashlib.sha256(b"decoder test identity").digest())
OTHER = RecipientIdentity(hashlib.sha256(b"decoder test other").digest())
SENDER = SenderSecretKey(hashlib.sha256(b"decoder test sender").digest())
TWO_CHUNKS = blake3.blake3(b"reference decoder 50").digest(length=300 * 1024)
MTIME = 1_700_000_000_000_000_000


def _tree() -> list[tuple[str, bytes, int, bytes]]:
    """(type, path, mode, content or target): dirs, files (one of two chunks), symlinks."""
    assert len(list(chunking.cut(TWO_CHUNKS))) == 2
    return [
        ("dir", b"data", 0o750, b""),
        ("file", b"data/two-chunks.bin", 0o640, TWO_CHUNKS),
        ("file", b"data/notes.txt", 0o644, b"row;value\n" * 300),
        ("file", b"data/copy-of-notes.txt", 0o600, b"row;value\n" * 300),
        ("file", b"empty", 0o644, b""),
        ("dir", b"nested/deeper", 0o700, b""),
        ("file", b"nested/deeper/\xff\xfe", 0o644, b"not utf-8 name"),
        ("symlink", b"nested/link", 0, b"deeper/\xff\xfe"),
        ("dir", b"nested", 0o755, b""),
    ]


def write_core_copy(store: Path, job: str = "core-job", *, drop_totals: bool = False) -> Any:
    job_key = jobkey.JobKey(hashlib.sha256(b"decoder test job key").digest())
    counter = iter(range(1, 1000))

    def nonce() -> bytes:
        return next(counter).to_bytes(24, "big")

    def put(raw: bytes) -> objectlist.ObjectRef:
        name = object_name(raw)
        (store / "jobs" / job / "objects" / name[:2]).mkdir(parents=True, exist_ok=True)
        (store / "jobs" / job / "objects" / name[:2] / name).write_bytes(raw)
        return objectlist.ObjectRef(bytes.fromhex(name), len(raw))

    packs: list[objectlist.ObjectRef] = []
    builder, seen = PackBuilder(), {}
    records: list[dict[str, Any]] = [{"t": "source", "kind": "directory", "root": "/test"}]
    for n, (kind, path, mode, content) in enumerate(sorted(_tree(), key=lambda e: e[1])):
        mtime = MTIME + n
        if kind == "dir":
            records.append({"t": "dir", **catalog.name_fields("path", path), "mode": mode,
                            "mtime_ns": mtime})  # fmt: skip
            continue
        if kind == "symlink":
            target = catalog.name_fields("target", content)
            records.append({"t": "symlink", **catalog.name_fields("path", path), **target,
                            "mtime_ns": mtime})  # fmt: skip
            continue
        records.append({"t": "file", **catalog.name_fields("path", path), "mode": mode,
                        "mtime_ns": mtime})  # fmt: skip
        refs = []
        for chunk in chunking.cut(content):
            cid = chunking.chunk_id(job_key.chunk_id_key, chunk)
            if cid not in seen:  # deduplication: an equal chunk is stored once
                _, blob = envelope.seal_chunk(job_key, chunk, nonce(), envelope.new_compressor(3))
                entry = builder.add(cid, blob, len(chunk))
                seen[cid] = catalog.ChunkRef(len(packs), entry.offset, len(blob), len(chunk), cid)
                if len(builder) == 2:
                    packs.append(put(builder.finish(job_key.pack_header_key, nonce())))
                    builder = PackBuilder()
            refs.append(seen[cid])
        records += catalog.chunk_records(refs)
        records.append({"t": "end", "size": len(content),
                        "blake3": blake3.blake3(content).hexdigest()})  # fmt: skip
    if len(builder):
        packs.append(put(builder.finish(job_key.pack_header_key, nonce())))
    totals = {"files": 5, "dirs": 3, "symlinks": 1, "tables": 0, "rows": 0, "chunks": 5,
              "bytes": sum(len(t[3]) for t in _tree() if t[0] == "file")}  # fmt: skip
    if not drop_totals:
        records.append({"t": "totals", **totals})
    lines = [canonical.dumps(r) + b"\n" for r in records]
    split = 4  # inside the stream of data/two-chunks.bin
    segments = [b"".join(lines[:split]), b"".join(lines[split:])]
    catalog_refs = [
        put(catalog.seal_segment(job_key.catalog_key, i, seg, nonce()))
        for i, seg in enumerate(segments)
    ]
    lists = [put(objectlist.encode_segment(packs[:1])), put(objectlist.encode_segment(packs[1:]))]
    manifests = store / "jobs" / job / "manifests"
    manifests.mkdir(parents=True)
    previous = None
    for sequence, recipients in ((1, (IDENTITY,)), (2, (OTHER, IDENTITY))):
        body = manifest.ManifestBody(
            job=job, job_id="ab" * 16, sequence=sequence, created="2026-11-22T21:00:00Z",
            previous=previous, sender=SENDER.public().to_text(),
            recipients=tuple(jobkey.wrap(job_key, r.public(), nonce()[:8] * 4) for r in recipients),
            key_check=job_key.key_check, object_lists=tuple(lists), catalog=tuple(catalog_refs),
            totals=manifest.Totals(len(packs), sum(p.size for p in packs)),
        )  # fmt: skip
        raw = manifest.sign(body, SENDER)
        (manifests / manifest.manifest_name(sequence)).write_bytes(raw)
        previous = hashlib.sha256(raw).hexdigest()
    assert len(packs) == 2
    return job


def test_restores_a_copy_written_by_the_core(tmp_path: Path) -> None:
    job = write_core_copy(tmp_path / "store")
    out = tmp_path / "out"
    ref.restore(tmp_path / "store", job, render_key_file(IDENTITY, "x"), out,
                SENDER.public().to_text())  # fmt: skip
    restored = tree_of(out)
    expected = []
    for n, (kind, path, mode, content) in enumerate(sorted(_tree(), key=lambda e: e[1])):
        entry: dict[str, Any] = {"type": kind, **catalog.name_fields("path", path)}
        entry["mtime_ns"] = MTIME + n
        if kind == "symlink":
            entry |= catalog.name_fields("target", content)
        else:
            entry["mode"] = mode
        if kind == "file":
            entry |= {"size": len(content), "blake3": blake3.blake3(content).hexdigest(),
                      "content_b64": base64.b64encode(content).decode()}  # fmt: skip
        expected.append(entry)
    assert restored == sorted(expected, key=lambda e: catalog.name_from(e, "path"))


def test_refuses_a_core_copy_without_totals(tmp_path: Path) -> None:
    job = write_core_copy(tmp_path / "store", drop_totals=True)
    with pytest.raises(ref.DecodeError, match="without totals") as caught:
        ref.restore(tmp_path / "store", job, render_key_file(IDENTITY, "x"), tmp_path / "out",
                    SENDER.public().to_text())  # fmt: skip
    assert caught.value.outcome == "integrity failure"


def test_refuses_a_core_copy_with_a_pack_bit_flipped(tmp_path: Path) -> None:
    job = write_core_copy(tmp_path / "store")
    pack = max((tmp_path / "store").rglob("objects/*/*"), key=lambda p: p.stat().st_size)
    raw = bytearray(pack.read_bytes())
    raw[100] ^= 1
    pack.write_bytes(bytes(raw))
    with pytest.raises(ref.DecodeError, match="does not match its name") as caught:
        ref.restore(tmp_path / "store", job, render_key_file(IDENTITY, "x"), tmp_path / "out",
                    SENDER.public().to_text())  # fmt: skip
    assert caught.value.outcome == "integrity failure"


def test_refuses_a_reader_that_is_not_a_recipient(tmp_path: Path) -> None:
    job = write_core_copy(tmp_path / "store")
    stranger = RecipientIdentity(hashlib.sha256(b"stranger").digest())
    with pytest.raises(ref.DecodeError) as caught:
        ref.restore(tmp_path / "store", job, render_key_file(stranger, "x"), tmp_path / "out",
                    SENDER.public().to_text())  # fmt: skip
    assert caught.value.outcome == "not a recipient"
