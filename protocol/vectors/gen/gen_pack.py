"""pack.json: sealed chunks grouped into a stored object, with an encrypted header at its end."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import nacl.bindings
from common import (
    JOB_KEY,
    Vector,
    data_hex,
    data_repeat,
    det,
    flip_bit,
    repeat_bytes,
    vector,
    vector_file,
    xof_bytes,
)

from transferd.core.constants import AD_PACK_HEADER, CHUNK_MAX, PACK_MAX_SIZE
from transferd.core.envelope import new_compressor, seal_chunk
from transferd.core.packs import PackBuilder, PackEntry, encode_header

PLAINTEXTS = (
    b"SELECT * FROM snds.er_prs_f -- first chunk of a table stream\n" * 4,
    xof_bytes("pack chunk 2", 100),
    xof_bytes("pack chunk 3", 100),
)
HEADER_NONCE = det("pack header nonce", 24)


def _chunks() -> list[tuple[bytes, bytes, int]]:
    """(chunk_id, blob, plain_len) of each plaintext, sealed with its own nonce."""
    out = []
    for i, plaintext in enumerate(PLAINTEXTS):
        nonce = det(f"pack chunk nonce {i}", 24)
        cid, blob = seal_chunk(JOB_KEY, plaintext, nonce, new_compressor(3))
        out.append((cid, blob, len(plaintext)))
    return out


def _sealed_header(header: bytes, nonce: bytes = HEADER_NONCE) -> bytes:
    ad = AD_PACK_HEADER + b"\x01"
    return nonce + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        header, ad, nonce, JOB_KEY.pack_header_key
    )


def _assemble(blobs: list[bytes], header_blob: bytes, prefix: bytes = b"TDPK\x01") -> bytes:
    return b"".join([prefix, *blobs, header_blob, struct.pack(">I", len(header_blob))])


def _entries(chunks: list[tuple[bytes, bytes, int]]) -> list[PackEntry]:
    entries, offset = [], 5
    for cid, blob, plain_len in chunks:
        entries.append(PackEntry(cid, offset, len(blob), plain_len))
        offset += len(blob)
    return entries


def _entries_json(entries: list[PackEntry]) -> list[dict[str, Any]]:
    return [
        {"chunk_id": e.chunk_id.hex(), "offset": e.offset, "blob_len": e.blob_len,
         "plain_len": e.plain_len} for e in entries
    ]  # fmt: skip


def _vector(name: str, comment: str, pack: bytes, expect: str, flags: tuple[str, ...],
            **extra: Any) -> Vector:  # fmt: skip
    sha = extra.pop("sha256", hashlib.sha256(pack).hexdigest())
    return vector(name, comment, expect, flags, job_key=JOB_KEY.key.hex(), pack=pack.hex(),
                  sha256=sha, **extra)  # fmt: skip


def _oversize() -> Vector:
    """A pack one byte above PACK_MAX_SIZE, as a data description: 'TDPK' || 0x01 repeated."""
    pattern = b"TDPK\x01"
    size = PACK_MAX_SIZE + 1
    return vector("pack_above_max_size", "64 MiB + 1 bytes starting 'TDPK' || 0x01: refused by "
                  "its size, before its magic, trailer or header are read", "format failure",
                  ("Bounds",), job_key=JOB_KEY.key.hex(), pack=data_repeat(pattern, size),
                  sha256=hashlib.sha256(repeat_bytes(pattern, size)).hexdigest())  # fmt: skip


def _valid(name: str, comment: str, chunks: list[tuple[bytes, bytes, int]],
           plaintexts: tuple[bytes, ...]) -> tuple[Vector, bytes]:  # fmt: skip
    builder = PackBuilder()
    for cid, blob, plain_len in chunks:
        builder.add(cid, blob, plain_len)
    pack = builder.finish(JOB_KEY.pack_header_key, HEADER_NONCE)
    v = _vector(name, comment, pack, "success", ("Deterministic",),
                header_nonce=HEADER_NONCE.hex(), entries=_entries_json(builder.entries),
                plaintexts=[data_hex(p) for p in plaintexts])  # fmt: skip
    return v, pack


def generate() -> dict[str, Any]:
    chunks = _chunks()
    three, pack = _valid("three_chunks", "one zstd and two stored chunks", chunks, PLAINTEXTS)
    one, _ = _valid("one_chunk", "a pack of one chunk", chunks[:1], PLAINTEXTS[:1])
    blobs = [blob for _, blob, _ in chunks]
    entries = _entries(chunks)
    header = encode_header(entries)
    trailer_at = len(pack) - 4
    header_at = trailer_at - len(_sealed_header(header))
    fmt, auth = "format failure", "authentication failure"

    def patched_length(length: int) -> bytes:
        return pack[:trailer_at] + struct.pack(">I", length)

    def impossible(blob_len: int, plain_len: int) -> bytes:
        bad = [*entries[:2], PackEntry(entries[2].chunk_id, 0, blob_len, plain_len)]
        return _assemble(blobs, _sealed_header(encode_header(bad)))

    swapped = [blobs[0], blobs[2], blobs[1]]
    invalid = [
        _vector("bad_magic", "magic TDPX", b"TDPX" + pack[4:], fmt, ("Malformed",)),
        _vector("empty_object", "zero bytes", b"", fmt, ("Bounds",)),
        _vector("prefix_only", "magic and version, nothing else", b"TDPK\x01", fmt, ("Bounds",)),
        _vector("version_2", "version byte 2", pack[:4] + b"\x02" + pack[5:],
                "unsupported version", ("UnknownVersion",)),
        _vector("version_0", "version byte 0", pack[:4] + b"\x00" + pack[5:],
                "unsupported version", ("UnknownVersion",)),
        _vector("header_length_below_minimum", "the trailer says 43 bytes: less than nonce, "
                "count and tag", patched_length(43), fmt, ("Bounds",)),
        _vector("header_length_above_maximum", "the trailer says more than a header of 16384 "
                "entries can take", patched_length(24 + 4 + 16384 * 40 + 16 + 1), fmt,
                ("Bounds",)),
        _vector("header_length_beyond_pack", "the trailer says more bytes than the pack holds",
                patched_length(len(pack)), fmt, ("Bounds",)),
        _vector("header_length_off_by_one", "the trailer says one byte more than the header: "
                "the header is read from the wrong offset and fails its tag",
                patched_length(trailer_at - header_at + 1), auth, ("Bounds",)),
        _vector("header_ciphertext_bit_flipped", "one bit of the sealed header flipped",
                flip_bit(pack, header_at + 30), auth, ("Tampered",)),
        _vector("header_nonce_bit_flipped", "one bit of the header's nonce flipped",
                flip_bit(pack, header_at), auth, ("Tampered",)),
        _vector("header_of_no_entries", "no blob, and an honestly sealed header of 0 entries "
                "(44 bytes): a pack holds at least one chunk, so the trailer is below 84",
                _assemble([], _sealed_header(struct.pack(">I", 0))), fmt, ("Bounds",)),
        _vector("trailing_byte", "one byte appended after the trailer", pack + b"\x00", fmt,
                ("Malformed",)),
        _vector("header_omits_last_blob", "an honestly sealed header listing two of three "
                "blobs: it does not account for every byte",
                _assemble(blobs, _sealed_header(encode_header(entries[:2]))), fmt,
                ("Malformed",)),
        _vector("header_lists_missing_blob", "an honestly sealed header listing three blobs, "
                "of which the pack holds two", _assemble(blobs[:2], _sealed_header(header)), fmt,
                ("Malformed",)),
        _vector("header_count_mismatch", "the header's count says 4, it holds 3 entries",
                _assemble(blobs, _sealed_header(struct.pack(">I", 4) + header[4:])), fmt,
                ("Malformed",)),
        _vector("header_entry_blob_too_short", "an entry of 40 bytes, less than a sealed empty "
                "payload", impossible(40, 1), fmt, ("Bounds",)),
        _vector("header_entry_blob_41", "an entry of 41 bytes: no payload seals to less "
                "than 42", impossible(41, 1), fmt, ("Bounds",)),
        _vector("header_entry_plain_above_max", "an entry claiming MAX + 1 plaintext bytes",
                impossible(entries[2].blob_len, CHUNK_MAX + 1), fmt, ("Bounds",)),
        _vector("header_entry_plain_len_zero", "an entry claiming no plaintext",
                impossible(entries[2].blob_len, 0), fmt, ("Bounds",)),
        _vector("header_entry_blob_above_plain_len_plus_41", "an entry whose blob is 42 bytes "
                "longer than its plaintext (the blobs are intact): no payload of that plaintext "
                "seals to it", impossible(entries[2].blob_len, entries[2].blob_len - 42), fmt,
                ("Bounds",)),
        _vector("chunk_ciphertext_bit_flipped", "the header opens; the second chunk fails its "
                "tag", flip_bit(pack, entries[1].offset + 30), auth, ("Tampered",)),
        _vector("blobs_swapped", "two blobs of equal length swapped; the header is intact and "
                "every chunk's AD names its id, so the second chunk fails",
                _assemble(swapped, pack[header_at:trailer_at]), auth, ("Tampered",)),
        _oversize(),
        _vector("name_mismatch", "a valid pack stored under the SHA-256 of another object",
                pack, "integrity failure", ("NameMismatch",),
                sha256=hashlib.sha256(pack + b"\x00").hexdigest()),
        _vector("name_mismatch_bit_flipped", "a pack with one bit flipped, under its original "
                "name: a verifier without the key detects it", flip_bit(pack, 100),
                "integrity failure", ("NameMismatch", "Tampered"),
                sha256=hashlib.sha256(pack).hexdigest()),
    ]  # fmt: skip
    return vector_file(
        "pack",
        "pack = 'TDPK' || 0x01 || blob_1 || ... || blob_n || header_blob || u32(len(header_blob)); "
        "header = u32(n) || n x (chunk_id || u32(blob_len) || u32(plain_len)), sealed with K_pack "
        "and ad 'transferd v1 pack header' || 0x01. Apply: refuse a pack above 64 MiB (its size "
        "is known from the object list before it is fetched); check SHA-256(pack) = sha256; parse "
        "and open the header, then open every chunk with the envelope rules. pack is hex, or a "
        "data description for the one vector too large to write out.",
        [three, one, *invalid],
    )
