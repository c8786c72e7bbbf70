"""Build copies by hand from the core's functions: catalogs no honest sender would write.

A forged copy is a real one in every other respect (sealed chunks in one pack, an object list,
sealed catalog segments, a manifest signed by the sender and wrapped to the recipient), so a
reader refuses it for the catalog's content alone, which is what the tests are about.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import blake3

from transferd.core import catalog, chunking, envelope, jobkey, manifest, objectlist
from transferd.core.catalog import ChunkRef
from transferd.core.jobkey import JobKey
from transferd.core.keys import RecipientIdentity, SenderSecretKey
from transferd.core.manifest import ManifestBody, Totals
from transferd.core.objectlist import ObjectRef
from transferd.core.packs import PackBuilder
from transferd.stores.base import Store


@dataclass(frozen=True)
class File:
    """A stream entry: its head record, then chunks and end made from ``content``."""

    head: dict[str, Any]
    content: bytes
    blake3: str | None = None
    """The end record's hash, when it should lie."""


@dataclass(frozen=True)
class Chunked:
    """A stream given as its chunks, so a huge file of repeated chunks costs one blob each."""

    head: dict[str, Any]
    chunks: list[bytes]


def path_fields(path: bytes) -> dict[str, str]:
    return catalog.name_fields("path", path)


async def forge(
    store: Store,
    job: str,
    sender: SenderSecretKey,
    recipient: RecipientIdentity,
    items: Sequence[dict[str, Any] | File | Chunked],
    *,
    totals: bool = True,
) -> JobKey:
    """Store a copy whose catalog is ``source``, then ``items`` (raw records, or Files expanded
    into head, chunks and end), then ``totals`` counted from them (unless ``totals=False``).
    Head records lacking ``mode`` or ``mtime_ns`` get defaults, so a test names only what it
    is about."""
    key = JobKey(os.urandom(32))
    pack = PackBuilder()
    records: list[dict[str, Any]] = [{"t": "source", "kind": "directory", "root": "/forged"}]
    for item in items:
        if isinstance(item, dict):
            records.append(_complete(item))
            continue
        records.append(_complete(item.head))
        chunks = item.chunks if isinstance(item, Chunked) else list(chunking.cut(item.content))
        refs: list[ChunkRef] = []
        placed: dict[bytes, ChunkRef] = {}
        hasher, size = blake3.blake3(), 0
        for chunk in chunks:
            cid = chunking.chunk_id(key.chunk_id_key, chunk)
            if cid not in placed:
                _, blob = envelope.seal_chunk(key, chunk, os.urandom(24), None)
                entry = pack.add(cid, blob, len(chunk))
                placed[cid] = ChunkRef(0, entry.offset, entry.blob_len, entry.plain_len, cid)
            refs.append(placed[cid])
            hasher.update(chunk)
            size += len(chunk)
        records += catalog.chunk_records(refs)
        lie = item.blake3 if isinstance(item, File) else None
        records.append({"t": "end", "size": size, "blake3": lie or hasher.hexdigest()})
    if totals:
        records.append(_totals(records))
    pack_refs = []  # a pack holds at least one chunk, and a job without one has no object list
    if len(pack):
        pack_refs.append(await _put(store, job, pack.finish(key.pack_header_key, os.urandom(24))))
    list_refs = [await _put(store, job, objectlist.encode_segment(pack_refs))] if pack_refs else []
    writer = catalog.CatalogWriter()
    segments = [full for r in records if (full := writer.add(r)) is not None]
    last = writer.finish()
    if last is not None:
        segments.append(last)
    catalog_refs = [
        await _put(store, job, catalog.seal_segment(key.catalog_key, i, data, os.urandom(24)))
        for i, data in segments
    ]
    body = ManifestBody(
        job=job,
        job_id=os.urandom(16).hex(),
        sequence=1,
        created="2026-11-22T21:00:00Z",
        previous=None,
        sender=sender.public().to_text(),
        recipients=(jobkey.wrap(key, recipient.public(), os.urandom(32)),),
        key_check=key.key_check,
        object_lists=tuple(list_refs),
        catalog=tuple(catalog_refs),
        totals=Totals(len(pack_refs), sum(r.size for r in pack_refs)),
    )
    await store.put_manifest(job, 1, manifest.sign(body, sender))
    return key


def _complete(record: dict[str, Any]) -> dict[str, Any]:
    defaults: dict[str, Any] = {"mtime_ns": 0}
    if record["t"] in ("dir", "file"):
        defaults["mode"] = 0o755 if record["t"] == "dir" else 0o644
    return defaults | record if record["t"] in ("dir", "file", "symlink") else record


def _totals(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The totals SPEC 10.2 defines, counted from ``records``."""
    counts = dict.fromkeys(("files", "dirs", "symlinks", "tables", "rows", "chunks", "bytes"), 0)
    for r in records:
        if r["t"] in ("dir", "file", "symlink", "table"):
            counts[r["t"] + "s"] += 1
        elif r["t"] == "chunks":
            counts["chunks"] += len(r["c"])
        elif r["t"] == "end":
            counts["bytes"] += r["size"]
            counts["rows"] += r.get("rows", 0)
    return {"t": "totals", **counts}


async def _put(store: Store, job: str, data: bytes) -> ObjectRef:
    digest = hashlib.sha256(data).digest()
    await store.put_object(job, digest.hex(), data)
    return ObjectRef(digest, len(data))


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
