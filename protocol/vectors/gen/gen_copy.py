"""copy/: a whole stored copy of a tiny job, written as a sender would, and the tree it restores.

The job holds a directory, an empty file, a file whose name is not UTF-8, and a symlink to it.
Two manifests: sequence 1 encrypted to A, then a rekey (sequence 2) to B and A, so a reader must
take the newest manifest, follow its chain and try every stanza. A second job, ``tiny-pq``,
holds the same tree under its own job key, encrypted to A (classic X25519) and then rekeyed to
the hybrid recipient HA alone: the move of an existing copy to post-quantum wraps, which only
the hybrid identity then reads.

A third job, ``leased``, holds the same files as a job of a copy that changed hands (SPEC 12.2):
manifest 1 by the agent of epoch 3; then that agent stalled, the agent of epoch 5 took over and
stored manifest 2 (``…2-…5``) on top of 1, and the stalled one, waking, still stored its own
manifest 2 (``…2-…3``). A reader must take (epoch, sequence) 2-5 as the newest, follow its chain
to 1-3, and set 2-3 aside as superseded.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path
from typing import Any

import blake3
import hybrid_seal
from common import (
    HYBRID_A,
    IDENTITY_A,
    IDENTITY_B,
    SENDER,
    Vector,
    det,
    vector,
    vector_file,
    write_json,
)

from transferd.core import canonical
from transferd.core.catalog import ChunkRef, chunk_records, name_fields, seal_segment
from transferd.core.chunking import cut
from transferd.core.constants import LABEL_MLKEM768X25519_WRAP
from transferd.core.envelope import new_compressor, seal_chunk
from transferd.core.jobkey import JobKey, Stanza, wrap
from transferd.core.keys import RecipientIdentity, render_key_file
from transferd.core.manifest import ManifestBody, Totals, manifest_name, sign
from transferd.core.objectlist import ObjectRef, encode_segment
from transferd.core.packs import PackBuilder, object_name

JOB = "tiny"
JOB_KEY = JobKey(det("copy job key"))
PQ_JOB = "tiny-pq"
PQ_JOB_KEY = JobKey(det("copy pq job key"))
MTIME = 1_795_000_000_000_000_000
RESUME = b"docs/r\xe9sum\xe9.txt"  # Latin-1, not UTF-8
CONTENT = b"Dossier de test: aucune donnee de sante reelle ici.\n" * 6

# (kind, path, mode, mtime_ns, content or symlink target)
TREE: list[tuple[str, bytes, int, int, bytes]] = [
    ("dir", b"docs", 0o750, MTIME + 3_000, b""),
    ("file", b"docs/empty.txt", 0o644, MTIME + 1_000, b""),
    ("file", RESUME, 0o600, MTIME + 2_000, CONTENT),
    ("symlink", b"latest", 0, MTIME + 4_000, RESUME),
]


def _records_and_pack(job_key: JobKey = JOB_KEY) -> tuple[list[dict[str, Any]], bytes]:
    records: list[dict[str, Any]] = [{"t": "source", "kind": "directory", "root": "/srv/tiny"}]
    pack = PackBuilder()
    size = 0
    for i, (kind, path, mode, mtime, data) in enumerate(TREE):
        if kind == "dir":
            records.append(
                {"t": "dir", **name_fields("path", path), "mode": mode, "mtime_ns": mtime}
            )
        elif kind == "symlink":
            records.append({"t": "symlink", **name_fields("path", path),
                            **name_fields("target", data), "mtime_ns": mtime})  # fmt: skip
        else:
            records.append(
                {"t": "file", **name_fields("path", path), "mode": mode, "mtime_ns": mtime}
            )
            refs = []
            for n, chunk in enumerate(cut(data)):
                nonce = det(f"copy chunk nonce {i} {n}", 24)
                cid, blob = seal_chunk(job_key, chunk, nonce, new_compressor(3))
                entry = pack.add(cid, blob, len(chunk))
                refs.append(ChunkRef(0, entry.offset, entry.blob_len, len(chunk), cid))
            records += chunk_records(refs)
            records.append(
                {"t": "end", "size": len(data), "blake3": blake3.blake3(data).hexdigest()}
            )
            size += len(data)
    counts = {kind + "s": sum(t[0] == kind for t in TREE) for kind in ("file", "dir", "symlink")}
    records.append({"t": "totals", **counts, "tables": 0, "rows": 0, "chunks": len(pack),
                    "bytes": size})  # fmt: skip
    return records, pack.finish(job_key.pack_header_key, det("copy pack header nonce", 24))


def _tree_json() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind, path, mode, mtime, data in sorted(TREE, key=lambda t: t[1]):
        entry: dict[str, Any] = {"type": kind, **name_fields("path", path), "mtime_ns": mtime}
        if kind == "symlink":
            entry |= name_fields("target", data)
        else:
            entry["mode"] = mode
        if kind == "file":
            entry |= {"size": len(data), "blake3": blake3.blake3(data).hexdigest(),
                      "content_b64": base64.b64encode(data).decode()}  # fmt: skip
        out.append(entry)
    return out


def _put(store: Path, data: bytes, job: str = JOB) -> ObjectRef:
    name = object_name(data)
    path = store / "jobs" / job / "objects" / name[:2] / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return ObjectRef(hashlib.sha256(data).digest(), len(data))


def _stanza(job_key: JobKey, r: RecipientIdentity, label: str) -> Stanza:
    if not r.post_quantum:
        return wrap(job_key, r.public(), det(f"copy ephemeral {label}"))
    out = hybrid_seal.seal(
        job_key.key,
        r.public().key,
        LABEL_MLKEM768X25519_WRAP,
        det(f"copy encapsulation seed {label}"),
        det(f"copy ephemeral {label}"),
    )
    return Stanza(r.public(), out[:1120], out[1120:])  # fmt: skip


LEASED = "leased"


def _manifest(sequence: int, previous: bytes | None, recipients: tuple[Any, ...],
              lists: ObjectRef, catalog: ObjectRef, pack: ObjectRef, job: str = JOB,
              job_key: JobKey = JOB_KEY, epoch: int = 0) -> bytes:  # fmt: skip
    label = "" if job == JOB else f"{job} "
    writer = f"e{epoch} " if epoch else ""
    stanzas = tuple(
        _stanza(job_key, r, f"{label}{writer}{sequence} {n}") for n, r in enumerate(recipients)
    )
    body = ManifestBody(
        job=job,
        job_id=det(f"copy {label}job id", 16).hex(),
        sequence=sequence,
        created=f"2026-11-2{1 + sequence}T08:00:00Z",
        previous=None if previous is None else hashlib.sha256(previous).hexdigest(),
        sender=SENDER.public().to_text(),
        recipients=stanzas,
        key_check=job_key.key_check,
        object_lists=(lists,),
        catalog=(catalog,),
        totals=Totals(objects=1, stored_bytes=pack.size),
        epoch=epoch,
    )
    return sign(body, SENDER)


def write(copy_dir: Path) -> dict[str, Any]:
    """Write copy/store and copy/identity.txt; return the contents of copy/copy.json."""
    store = copy_dir / "store"
    shutil.rmtree(store, ignore_errors=True)
    records, pack_bytes = _records_and_pack()
    pack = _put(store, pack_bytes)
    lists = _put(store, encode_segment([pack]))
    lines = b"".join(canonical.dumps(r) + b"\n" for r in records)
    catalog = _put(
        store, seal_segment(JOB_KEY.catalog_key, 0, lines, det("copy catalog nonce", 24))
    )
    first = _manifest(1, None, (IDENTITY_A,), lists, catalog, pack)
    second = _manifest(2, first, (IDENTITY_B, IDENTITY_A), lists, catalog, pack)
    manifests = store / "jobs" / JOB / "manifests"
    manifests.mkdir(parents=True)
    (manifests / manifest_name(1)).write_bytes(first)
    (manifests / manifest_name(2)).write_bytes(second)
    (copy_dir / "identity.txt").write_text(render_key_file(IDENTITY_A, "2026-11-22T20:00:00Z"))
    (copy_dir / "identity-pq.txt").write_text(render_key_file(HYBRID_A, "2026-11-22T20:00:00Z"))
    v: Vector = vector(
        "tiny_job_rekeyed",
        "a directory, an empty file, a file with a Latin-1 name, a symlink; manifest 2 rekeys "
        "the job to B and A",
        flags=("Deterministic", "Unicode"),
        store="store",
        job=JOB,
        identity_file="identity.txt",
        expected_sender=SENDER.public().to_text(),
        newest_sequence=2,
        job_key=JOB_KEY.key.hex(),
        tree=_tree_json(),
    )
    return vector_file(
        "copy",
        "A whole stored copy: store/ is a store directory (jobs/<job>/objects/<sha256[:2]>/"
        "<sha256>, jobs/<job>/manifests/<sequence, 20 digits>). Read the newest manifest, check "
        "its signature by expected_sender and its chain, unwrap K_job with identity_file, read "
        "the object lists and catalog, open every chunk, and compare the restored tree with tree "
        "(sorted by raw path bytes). Where names carry an epoch (<sequence>-<epoch>, SPEC "
        "12.2) the newest is the highest (epoch, sequence), its chain is followed back, and the "
        "manifests off it of lower epochs are the superseded ones.",
        [v, _write_pq(store), _leased(store)],
    )


def _leased(store: Path) -> Vector:
    """Job ``leased`` (module docstring): 1-3, then 2-5 by the taker and 2-3 by the stale one."""
    records, pack_bytes = _records_and_pack()
    pack = _put(store, pack_bytes, LEASED)
    lists = _put(store, encode_segment([pack]), LEASED)
    lines = b"".join(canonical.dumps(r) + b"\n" for r in records)
    nonce = det("copy leased catalog nonce", 24)
    catalog = _put(store, seal_segment(JOB_KEY.catalog_key, 0, lines, nonce), LEASED)
    refs = (lists, catalog, pack)
    first = _manifest(1, None, (IDENTITY_A,), *refs, job=LEASED, epoch=3)
    taker = _manifest(2, first, (IDENTITY_A,), *refs, job=LEASED, epoch=5)
    stale = _manifest(2, first, (IDENTITY_B, IDENTITY_A), *refs, job=LEASED, epoch=3)
    manifests = store / "jobs" / LEASED / "manifests"
    manifests.mkdir(parents=True)
    for seq, epoch, data in ((1, 3, first), (2, 5, taker), (2, 3, stale)):
        (manifests / manifest_name(seq, epoch)).write_bytes(data)
    return vector(
        "leased_job_taken_over",
        "a job of a copy: manifest 1 at epoch 3; the agent of epoch 5 took over and stored 2-5; "
        "the stalled agent of epoch 3 still stored its 2-3, which is superseded",
        flags=("Deterministic", "Unicode"),
        store="store",
        job=LEASED,
        identity_file="identity.txt",
        expected_sender=SENDER.public().to_text(),
        newest_sequence=2,
        newest_epoch=5,
        superseded=[manifest_name(2, 3)],
        job_key=JOB_KEY.key.hex(),
        tree=_tree_json(),
    )


def _write_pq(store: Path) -> Vector:
    """tiny-pq: manifest 1 to A (X25519), manifest 2 rekeyed to HA (hybrid) alone."""
    records, pack_bytes = _records_and_pack(PQ_JOB_KEY)
    pack = _put(store, pack_bytes, PQ_JOB)
    lists = _put(store, encode_segment([pack]), PQ_JOB)
    lines = b"".join(canonical.dumps(r) + b"\n" for r in records)
    catalog = _put(
        store,
        seal_segment(PQ_JOB_KEY.catalog_key, 0, lines, det("copy pq catalog nonce", 24)),
        PQ_JOB,
    )
    refs = (lists, catalog, pack)
    first = _manifest(1, None, (IDENTITY_A,), *refs, job=PQ_JOB, job_key=PQ_JOB_KEY)
    second = _manifest(2, first, (HYBRID_A,), *refs, job=PQ_JOB, job_key=PQ_JOB_KEY)
    manifests = store / "jobs" / PQ_JOB / "manifests"
    manifests.mkdir(parents=True)
    (manifests / manifest_name(1)).write_bytes(first)
    (manifests / manifest_name(2)).write_bytes(second)
    return vector(
        "tiny_job_rekeyed_to_hybrid",
        "the same tree as job tiny-pq: manifest 1 encrypted to A (X25519), manifest 2 rekeyed "
        "to the hybrid recipient HA alone (add HA, remove A); read with HA's identity",
        flags=("Deterministic", "Unicode", "PostQuantum"),
        store="store",
        job=PQ_JOB,
        identity_file="identity-pq.txt",
        expected_sender=SENDER.public().to_text(),
        newest_sequence=2,
        job_key=PQ_JOB_KEY.key.hex(),
        tree=_tree_json(),
    )


def generate(copy_dir: Path) -> None:
    write_json(copy_dir / "copy.json", write(copy_dir))
