"""catalog.json: encrypted segments of canonical-JSON records naming what was copied, and where."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import nacl.bindings
import zstandard
from common import (
    JOB_KEY,
    SKIPPABLE_FRAME,
    Vector,
    det,
    flip_bit,
    vector,
    vector_file,
    zstd_with_dictionary_id,
)

from transferd.core import canonical
from transferd.core.catalog import seal_segment
from transferd.core.constants import CATALOG_SEGMENT_MAX

NON_UTF8 = b"donn\xe9es/caf\xe9.csv"
SOURCE = {"t": "source", "kind": "directory", "root": "/srv/export"}
MTIME = 1_795_000_000_123_456_789
EMPTY_BLAKE3 = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _lines(*records: dict[str, Any]) -> bytes:
    """Canonical JSON lines, unchecked: some vectors hold integers beyond what a writer may."""
    return b"".join(canonical.dumps(r, checked=False) + b"\n" for r in records)


def _dir(path: str, **extra: Any) -> dict[str, Any]:
    return {"t": "dir", "path": path, "mode": 0o755, "mtime_ns": MTIME} | extra


TREE = (
    SOURCE,
    {"t": "symlink", "path": "dernier", "target_b64": _b64(NON_UTF8), "mtime_ns": MTIME},
    {"t": "dir", "path_b64": _b64(b"donn\xe9es"), "mode": 0o750, "mtime_ns": MTIME},
    {"t": "file", "path_b64": _b64(NON_UTF8), "mode": 0o640, "mtime_ns": MTIME},
    {"t": "chunks", "c": [[0, 5, 141, 100, det("catalog chunk 1").hex()],
                          [1, 5, 1065, 1024, det("catalog chunk 2").hex()]]},
    {"t": "end", "size": 1124, "blake3": det("catalog file hash").hex()},
    {"t": "file", "path": "vide.txt", "mode": 0o644, "mtime_ns": MTIME},
    {"t": "end", "size": 0, "blake3": EMPTY_BLAKE3},
    {"t": "totals", "files": 2, "dirs": 1, "symlinks": 1, "tables": 0, "rows": 0,
     "chunks": 2, "bytes": 1124},
)  # fmt: skip
TREE_PATHS = [b"dernier", b"donn\xe9es", NON_UTF8, b"vide.txt"]
AZURE = {"t": "source", "kind": "azure-blob", "account": "hdh", "container": "exports",
         "prefix": "2026/"}  # fmt: skip
MAPPED = ".transferd-blob-names/" + hashlib.sha256(b"a//b").hexdigest()
MD5 = _b64(hashlib.md5(b"", usedforsecurity=False).digest())
PG = {"t": "source", "kind": "postgresql", "host": "db.example", "database": "snds"}


def _blob(path: str, **extra: Any) -> dict[str, Any]:
    return {"t": "file", "path": path, "mode": 0o600, "mtime_ns": MTIME, "etag": "0x8DD1",
            "content_md5": MD5, "md5_checked": True} | extra  # fmt: skip


def _table(**extra: Any) -> dict[str, Any]:
    return {"t": "table", "path": "tables/public/patients", "schema": "public",
            "name": "patients", "format": "copy-text", "encoding": "UTF8",
            "columns": [["id", "bigint"], ["born", "date"]]} | extra  # fmt: skip


def _nonce(name: str) -> bytes:
    return det(f"catalog nonce {name}", 24)


def _sealed(name: str, comment: str, records: bytes, index: int = 0, expect: str = "success",
            flags: tuple[str, ...] = (), **extra: Any) -> Vector:  # fmt: skip
    """An honestly sealed segment of ``records`` at ``index``."""
    nonce = _nonce(name)
    segment = seal_segment(JOB_KEY.catalog_key, index, records, nonce)
    return vector(name, comment, expect, ("Deterministic", *flags), job_key=JOB_KEY.key.hex(),
                  index=index, nonce=nonce.hex(), records=records.decode("ascii"),
                  segment=segment.hex(), sha256=hashlib.sha256(segment).hexdigest(),
                  **extra)  # fmt: skip


def _raw(name: str, comment: str, segment: bytes, index: int, expect: str,
         flags: tuple[str, ...]) -> Vector:  # fmt: skip
    """A segment given only as bytes: altered after sealing, or opened at another index."""
    return vector(name, comment, expect, flags, job_key=JOB_KEY.key.hex(), index=index,
                  segment=segment.hex(), sha256=hashlib.sha256(segment).hexdigest())  # fmt: skip


def _sealed_payload(name: str, payload: bytes) -> bytes:
    """A segment whose sealed payload is ``payload`` as given (not a well-formed zstd frame)."""
    nonce = _nonce(name)
    ad = b"transferd v1 catalog\x01" + bytes(4)
    return (
        b"TDCS\x01"
        + nonce
        + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            payload, ad, nonce, JOB_KEY.catalog_key
        )
    )


def _path_fault(name: str, comment: str, record: dict[str, Any]) -> Vector:
    flags = ("PathTraversal",) if "path" in record or "path_b64" in record else ("Malformed",)
    return _sealed(name, comment, _lines(SOURCE, record), expect="format failure", flags=flags)


def generate() -> dict[str, Any]:
    tree = _lines(*TREE)
    good = seal_segment(JOB_KEY.catalog_key, 0, tree, _nonce("tree"))
    auth, fmt = "authentication failure", "format failure"
    no_size = zstandard.ZstdCompressor(write_content_size=False).compress(_lines(SOURCE))
    framed = zstandard.ZstdCompressor(level=3).compress(_lines(SOURCE))
    line = _lines(_dir("x"))
    over = _lines(SOURCE) + line * ((CATALOG_SEGMENT_MAX + 1 - len(_lines(SOURCE))) // len(line))
    over = over[: -len(line)] + _lines(_dir("x" * (CATALOG_SEGMENT_MAX + 1 - len(over) + 1)))
    if len(over) != CATALOG_SEGMENT_MAX + 1:
        raise ValueError(f"records of {len(over)} bytes, not CATALOG_SEGMENT_MAX + 1")
    vectors = [
        _sealed("tree", "a directory, a file with a non-UTF-8 name in two chunks, an empty "
                "file, a symlink whose target is not UTF-8", tree, 0,
                flags=("Unicode",), paths=[p.hex() for p in TREE_PATHS]),
        _sealed("index_7", "the eighth segment of a catalog: its index is in the AD",
                _lines(_dir("a"), _dir("a/b")), 7, paths=[b"a".hex(), b"a/b".hex()]),
        _sealed("mtime_int64_bounds", "modification times -2^63 and 2^63 - 1, the bounds of "
                "canonical JSON integers (only mtime_ns may be negative)",
                _lines(SOURCE, _dir("old", mtime_ns=-(2**63)), _dir("new", mtime_ns=2**63 - 1)),
                flags=("Boundary",), paths=[b"old".hex(), b"new".hex()]),
        _sealed("azure_blob_files", "file records of an azure-blob source carry etag, "
                "content_md5 and md5_checked, and version_id and blob_name when they apply",
                _lines(AZURE, _blob("a/b.csv", version_id="2026-11-22T21:00:00.0000000Z"),
                       _blob(MAPPED, blob_name="2026/a//b", md5_checked=False)),
                paths=[b"a/b.csv".hex(), MAPPED.encode().hex()]),
        _sealed("table_record", "a table record: path, schema, name, format, encoding, columns",
                _lines(PG, _table()), paths=[b"tables/public/patients".hex()]),
        _sealed("dir_unknown_member", "a dir record with a member uid",
                _lines(SOURCE, _dir("d", uid=0)), expect=fmt, flags=("Malformed",)),
        _sealed("file_without_mtime", "a file record without mtime_ns",
                _lines(SOURCE, {"t": "file", "path": "f", "mode": 0o644}), expect=fmt,
                flags=("Malformed",)),
        _sealed("end_unknown_member", "an end record with a member md5",
                _lines(SOURCE, {"t": "end", "size": 0, "blake3": EMPTY_BLAKE3, "md5": MD5}),
                expect=fmt, flags=("Malformed",)),
        _sealed("totals_of_entries_and_streams", "totals with entries and streams instead of "
                "dirs and symlinks (what transferd wrote before SPEC 10.2 was followed)",
                _lines(SOURCE, {"t": "totals", "entries": 0, "files": 0, "streams": 0,
                "tables": 0, "rows": 0, "chunks": 0, "bytes": 0}), expect=fmt,
                flags=("Malformed",)),
        _sealed("chunks_unknown_member", "a chunks record with a member n",
                _lines(SOURCE, {"t": "chunks", "c": [[0, 5, 141, 100, det("c").hex()]], "n": 1}),
                expect=fmt, flags=("Malformed",)),
        _sealed("source_unknown_kind", "a source of kind s3",
                _lines({"t": "source", "kind": "s3", "bucket": "b"}), expect=fmt,
                flags=("UnknownVersion",)),
        _sealed("source_member_null", "a source member that is null, neither string nor integer",
                _lines(SOURCE | {"host": None}), expect=fmt, flags=("Malformed",)),
        _sealed("mode_above_permission_bits", "mode 0o10755: a file-type bit of st_mode",
                _lines(SOURCE, _dir("d", mode=0o10755)), expect=fmt, flags=("Bounds",)),
        _sealed("end_size_negative", "an end record of size -1",
                _lines(SOURCE, {"t": "end", "size": -1, "blake3": EMPTY_BLAKE3}), expect=fmt,
                flags=("Bounds",)),
        _sealed("symlink_empty_target", "a symlink whose target is empty",
                _lines(SOURCE, {"t": "symlink", "path": "l", "target": "", "mtime_ns": MTIME}),
                expect=fmt, flags=("Malformed",)),
        _sealed("file_etag_from_a_directory_source", "a file of a directory source with an etag",
                _lines(SOURCE, _blob("f")), expect=fmt, flags=("Malformed",)),
        _sealed("azure_blob_without_etag", "a file of an azure-blob source without its etag",
                _lines(AZURE, {k: v for k, v in _blob("f").items() if k != "etag"}),
                expect=fmt, flags=("Malformed",)),
        _sealed("azure_blob_name_unmapped", "blob_name on a file whose path is the blob's own "
                "name (blob_name comes exactly with a mapped path)",
                _lines(AZURE, _blob("f", blob_name="2026/f")), expect=fmt, flags=("Malformed",)),
        _sealed("azure_mapped_without_blob_name", "a mapped path without its blob_name",
                _lines(AZURE, _blob(MAPPED)), expect=fmt, flags=("Malformed",)),
        _sealed("azure_content_md5_15_bytes", "content_md5 of 15 bytes",
                _lines(AZURE, _blob("f", content_md5=_b64(bytes(15)))), expect=fmt,
                flags=("Bounds",)),
        _sealed("table_without_columns", "a table record without columns",
                _lines(PG, {k: v for k, v in _table().items() if k != "columns"}), expect=fmt,
                flags=("Malformed",)),
        _sealed("table_columns_not_pairs", "columns that are names alone",
                _lines(PG, _table(columns=["id", "born"])), expect=fmt, flags=("Malformed",)),
        _sealed("table_path_parent", "a table whose path is ../x", _lines(PG, _table(path="../x")),
                expect=fmt, flags=("PathTraversal",)),
        _sealed("mtime_above_int64", "a modification time of 2^63",
                _lines(SOURCE, _dir("x", mtime_ns=2**63)), expect=fmt, flags=("Bounds",)),
        _sealed("mtime_below_int64", "a modification time of -2^63 - 1",
                _lines(SOURCE, _dir("x", mtime_ns=-(2**63) - 1)), expect=fmt, flags=("Bounds",)),
        _raw("opened_at_wrong_index", "segment 0 presented as segment 1", good, 1, auth,
             ("Tampered",)),
        _raw("ciphertext_bit_flipped", "one bit of the sealed records flipped",
             flip_bit(good, 5 + 24 + 10), 0, auth, ("Tampered",)),
        _raw("nonce_bit_flipped", "one bit of the nonce flipped", flip_bit(good, 5), 0, auth,
             ("Tampered",)),
        _raw("tag_bit_flipped", "one bit of the tag flipped", flip_bit(good, -1), 0, auth,
             ("Tampered",)),
        _raw("bad_magic", "magic TDCX", b"TDCX" + good[4:], 0, fmt, ("Malformed",)),
        _raw("version_2", "version byte 2", good[:4] + b"\x02" + good[5:], 0,
             "unsupported version", ("UnknownVersion",)),
        _raw("truncated", "shorter than magic, version, nonce and tag", good[:44], 0, fmt,
             ("Bounds",)),
        _path_fault("path_parent", "path ../x", _dir("../x")),
        _path_fault("path_parent_inside", "path a/../../x", _dir("a/../../x")),
        _path_fault("path_absolute", "path /etc/passwd", _dir("/etc/passwd")),
        _path_fault("path_empty_component", "path a//b", _dir("a//b")),
        _path_fault("path_dot_component", "path a/./b", _dir("a/./b")),
        _path_fault("path_trailing_slash", "path a/ (an empty last component)", _dir("a/")),
        _path_fault("path_empty", "an empty path", _dir("")),
        _path_fault("path_nul", "a NUL byte in the path", _dir("a\x00b")),
        _sealed("path_unpaired_surrogate", "a path holding the escape \\ud800 alone: no "
                "text, so no bytes to write", _lines(SOURCE) + b'{"mode":493,"mtime_ns":1,'
                b'"path":"a\\ud800","t":"dir"}\n', expect=fmt, flags=("Malformed",)),
        _path_fault("path_b64_absolute", "path_b64 of /\\xff",
                    {"t": "file", "path_b64": _b64(b"/\xff"), "mode": 0o644,
                     "mtime_ns": MTIME}),
        _sealed("path_b64_holds_utf8", "path_b64 of a/b, a UTF-8 name: it must be written as "
                "path", _lines(SOURCE, {"t": "dir", "path_b64": _b64(b"a/b"), "mode": 0o755,
                "mtime_ns": MTIME}), expect=fmt, flags=("NonCanonical",)),
        _sealed("target_b64_holds_utf8", "target_b64 of a UTF-8 name",
                _lines(SOURCE, {"t": "symlink", "path": "l", "target_b64": _b64(b"x"),
                "mtime_ns": MTIME}), expect=fmt, flags=("NonCanonical",)),
        _sealed("path_in_both_forms", "a record with path and path_b64",
                _lines(SOURCE, _dir("a") | {"path_b64": _b64(b"\xff")}), expect=fmt,
                flags=("NonCanonical",)),
        _path_fault("path_b64_parent", "path_b64 of ../\\xff",
                    {"t": "symlink", "path_b64": _b64(b"../\xff"), "target": "x",
                     "mtime_ns": MTIME}),
        _sealed("path_b64_non_canonical", "path_b64 without its base64 padding",
                _lines(SOURCE, {"t": "dir", "path_b64": "YWI", "mode": 0o755, "mtime_ns": 1}),
                expect=fmt, flags=("NonCanonical",)),
        _sealed("path_missing", "a dir record with no path", _lines(SOURCE, {"t": "dir",
                "mode": 0o755, "mtime_ns": MTIME}), expect=fmt, flags=("Malformed",)),
        _sealed("path_not_a_string", "a path that is a number",
                _lines(SOURCE, _dir("x") | {"path": 7}), expect=fmt, flags=("Malformed",)),
        _sealed("unknown_record_type", "a record of type 'device'",
                _lines(SOURCE, {"t": "device", "path": "d"}), expect=fmt,
                flags=("UnknownVersion",)),
        _sealed("record_not_an_object", "a record that is a JSON array",
                _lines(SOURCE) + b"[1,2]\n", expect=fmt, flags=("Malformed",)),
        _sealed("record_not_canonical", "a record with a space after a colon",
                _lines(SOURCE) + b'{"mode":493,"mtime_ns":1,"path":"x","t": "dir"}\n',
                expect=fmt, flags=("NonCanonical",)),
        _sealed("record_duplicate_key", "a record with the key path twice",
                _lines(SOURCE) + b'{"mode":493,"mtime_ns":1,"path":"x","path":"y","t":"dir"}\n',
                expect=fmt, flags=("NonCanonical",)),
        _sealed("record_float", "a number with a fraction",
                _lines(SOURCE) + b'{"mode":493,"mtime_ns":1.5,"path":"x","t":"dir"}\n',
                expect=fmt, flags=("Malformed",)),
        _sealed("no_final_newline", "the last record lacks its newline", _lines(SOURCE)[:-1],
                expect=fmt, flags=("Malformed",)),
        _raw("payload_not_zstd", "the sealed payload is not a zstd frame",
             _sealed_payload("payload_not_zstd", b"not zstd at all"), 0, fmt, ("Malformed",)),
        _raw("zstd_without_content_size", "a zstd frame without its content size",
             _sealed_payload("zstd_without_content_size", no_size), 0, fmt, ("Malformed",)),
        _raw("zstd_trailing_byte", "one zero byte after the zstd frame",
             _sealed_payload("zstd_trailing_byte", framed + b"\x00"), 0, fmt, ("Malformed",)),
        _raw("zstd_skippable_frame_after", "a skippable frame after the zstd frame",
             _sealed_payload("zstd_skippable_frame_after", framed + SKIPPABLE_FRAME), 0, fmt,
             ("Malformed",)),
        _raw("zstd_dictionary_id", "the frame header names dictionary 0x7472616e",
             _sealed_payload("zstd_dictionary_id", zstd_with_dictionary_id(framed, 0x7472616E)),
             0, fmt, ("Malformed",)),
        _raw("records_above_limit", "the frame declares 4194305 bytes of records (a source "
             "record, then dir records): one more than a segment may hold, refused before "
             "inflating", _sealed_payload("records_above_limit",
             zstandard.ZstdCompressor(level=3).compress(over)), 0, fmt, ("Bounds",)),
        _sealed("chunk_plain_len_zero", "a chunk reference with plain length 0",
                _lines(SOURCE, {"t": "chunks", "c": [[0, 5, 41, 0, det("c").hex()]]}),
                expect=fmt, flags=("Bounds",)),
        _sealed("chunk_plain_len_above_max", "a chunk reference above MAX",
                _lines(SOURCE, {"t": "chunks", "c": [[0, 5, 141, 4194305, det("c").hex()]]}),
                expect=fmt, flags=("Bounds",)),
        _sealed("chunk_blob_len_41", "a chunk reference with blob length 41: no payload "
                "seals to less than 42 bytes", _lines(SOURCE, {"t": "chunks",
                "c": [[0, 5, 41, 1, det("c").hex()]]}), expect=fmt, flags=("Bounds",)),
        _sealed("chunk_blob_len_above_plain_len_plus_41", "blob length 142 for 100 bytes of "
                "plaintext: a stored payload seals to 141", _lines(SOURCE, {"t": "chunks",
                "c": [[0, 5, 142, 100, det("c").hex()]]}), expect=fmt, flags=("Bounds",)),
        _sealed("chunk_id_upper_case", "a chunk id in upper-case hex",
                _lines(SOURCE, {"t": "chunks", "c": [[0, 5, 141, 100, det("c").hex().upper()]]}),
                expect=fmt, flags=("NonCanonical",)),
        _sealed("chunk_reference_four_fields", "a chunk reference without its id",
                _lines(SOURCE, {"t": "chunks", "c": [[0, 5, 141, 100]]}), expect=fmt,
                flags=("Malformed",)),
        _sealed("chunk_negative_offset", "a chunk reference with offset -1",
                _lines(SOURCE, {"t": "chunks", "c": [[0, -1, 141, 100, det("c").hex()]]}),
                expect=fmt, flags=("Bounds",)),
        _sealed("chunks_empty", "a chunks record with no reference",
                _lines(SOURCE, {"t": "chunks", "c": []}), expect=fmt, flags=("Bounds",)),
        _sealed("no_records", "a segment of no record at all (an empty frame)", b"",
                expect=fmt, flags=("Bounds",)),
        _sealed("chunks_not_a_list", "a chunks record whose c is an object",
                _lines(SOURCE, {"t": "chunks", "c": {}}), expect=fmt, flags=("Malformed",)),
    ]  # fmt: skip
    return vector_file(
        "catalog",
        "segment = 'TDCS' || 0x01 || nonce || XChaCha20-Poly1305(K_catalog, nonce, 'transferd "
        "v1 catalog' || 0x01 || u32(index), zstd(records)); records are canonical JSON lines. "
        "Apply: check SHA-256(segment) = sha256, open at index, inflate (the frame MUST declare "
        "its size), parse every line, then check every dir/file/symlink path and every chunk "
        "reference. Seal (Deterministic vectors): seal(K_catalog, index, records, nonce) = "
        "segment with zstd level 3.",
        vectors,
    )
