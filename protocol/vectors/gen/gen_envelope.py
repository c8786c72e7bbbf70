"""envelope.json: one chunk sealed (encoding byte, zstd or stored body, AEAD) and opened."""

from __future__ import annotations

from typing import Any

import nacl.bindings
import zstandard
from common import (
    JOB_KEY,
    OTHER_JOB_KEY,
    SKIPPABLE_FRAME,
    Vector,
    data_hex,
    data_repeat,
    data_value,
    det,
    flip_bit,
    repeat_bytes,
    vector,
    vector_file,
    xof_bytes,
    zstd_with_dictionary_id,
)

from transferd.core.chunking import chunk_id
from transferd.core.constants import AD_CHUNK, CHUNK_MAX
from transferd.core.envelope import encode_payload, new_compressor, seal

TEXT = b"Les donnees de sante sont copiees chiffrees de bout en bout. " * 5
RANDOM = xof_bytes("envelope random 200", 200)
LEVEL = 3
EVEN = RANDOM[:100] + bytes(17)
"""117 bytes that zstd level 3 compresses to a frame of exactly 117 bytes."""


def _id(plaintext: bytes) -> bytes:
    return chunk_id(JOB_KEY.chunk_id_key, plaintext)


def _nonce(name: str) -> bytes:
    return det(f"envelope nonce {name}", 24)


def _zstd(plaintext: bytes, content_size: bool = True) -> bytes:
    return zstandard.ZstdCompressor(level=LEVEL, write_content_size=content_size).compress(
        plaintext
    )


def _sealed(name: str, comment: str, payload: bytes, cid: bytes, plain_len: int,
            expect: str = "success", flags: tuple[str, ...] = (),
            plaintext: dict[str, Any] | None = None, **location: int) -> Vector:  # fmt: skip
    """A vector whose blob is seal(K_chunk, cid, payload, nonce): honest sealing, given inputs."""
    nonce = _nonce(name)
    blob = seal(JOB_KEY.chunk_key, cid, payload, nonce)
    return vector(name, comment, expect, ("Deterministic", *flags), job_key=JOB_KEY.key.hex(),
                  chunk_id=cid.hex(), plain_len=plain_len, nonce=nonce.hex(),
                  payload=payload.hex(), blob=blob.hex(), plaintext=plaintext,
                  **location)  # fmt: skip


def _blob(name: str, comment: str, blob: bytes, cid: bytes, plain_len: int, expect: str,
          flags: tuple[str, ...], key: bytes | None = None, **location: int) -> Vector:  # fmt: skip
    """A vector given only as a blob to open (altered after sealing, or opened with another key)."""
    return vector(name, comment, expect, flags, job_key=(key or JOB_KEY.key).hex(),
                  chunk_id=cid.hex(), plain_len=plain_len, blob=blob.hex(),
                  **location)  # fmt: skip


def valid_vectors() -> list[Vector]:
    big = data_repeat(b"0123456789abcdef", CHUNK_MAX)
    big_plain = data_value(big)
    return [
        _sealed("stored_one_byte", "one byte: zstd cannot make it smaller, so it is stored",
                encode_payload(b"a", new_compressor(LEVEL)), _id(b"a"), 1,
                plaintext=data_hex(b"a")),
        _sealed("stored_incompressible", "200 random bytes, stored",
                encode_payload(RANDOM, new_compressor(LEVEL)), _id(RANDOM), len(RANDOM),
                plaintext=data_hex(RANDOM)),
        _sealed("zstd_text", "305 bytes of repeated text, one zstd frame with its content size",
                encode_payload(TEXT, new_compressor(LEVEL)), _id(TEXT), len(TEXT),
                plaintext=data_hex(TEXT)),
        _sealed("zstd_exactly_max", "a chunk of exactly MAX bytes (the largest a reader "
                "accepts), compressed", encode_payload(big_plain, new_compressor(LEVEL)),
                _id(big_plain), CHUNK_MAX, flags=("Bounds",), plaintext=big),
        _sealed("stored_though_compressible", "a sender MAY store what it could compress: "
                "readers accept either encoding", b"\x00" + TEXT, _id(TEXT), len(TEXT),
                plaintext=data_hex(TEXT)),
    ]  # fmt: skip


def location_vectors() -> list[Vector]:
    """SPEC 13.4 step 1: a blob lies among a pack's blobs, after its 5-byte prefix and before
    the smallest header blob and its trailer (88 bytes), checked before anything is fetched."""
    good = seal(JOB_KEY.chunk_key, _id(TEXT), b"\x01" + _zstd(TEXT), _nonce("zstd_text"))
    n, at_end = len(TEXT), 5 + len(good) + 88

    def located(name: str, comment: str, offset: int, pack_size: int, expect: str,
                pack_index: int = 0, pack_count: int = 1) -> Vector:  # fmt: skip
        fields = {"pack_size": pack_size, "offset": offset, "pack_index": pack_index,
                  "pack_count": pack_count}  # fmt: skip
        if expect == "success":
            return _sealed(name, comment, b"\x01" + _zstd(TEXT), _id(TEXT), n, flags=("Bounds",),
                           plaintext=data_hex(TEXT), **fields)  # fmt: skip
        return _blob(name, comment, good, _id(TEXT), n, expect, ("Bounds",), **fields)

    return [
        located("located_before_the_smallest_header", "the blob at offset 5 of a pack that ends "
                "88 bytes after it: the largest offset + length a reference may name", 5,
                at_end, "success"),
        located("located_in_the_pack_prefix", "offset 4: the blob would start inside "
                "'TDPK' || 0x01", 4, at_end, "format failure"),
        located("located_over_the_header", "the blob would end 87 bytes before the pack's end, "
                "where the smallest header blob and its trailer lie", 5, at_end - 1,
                "format failure"),
        located("pack_index_past_the_last_pack", "pack index 3 in a job of 3 packs (0 to 2): "
                "refused before anything is fetched", 5, at_end, "format failure", 3, 3),
    ]  # fmt: skip


def invalid_vectors() -> list[Vector]:
    if len(_zstd(EVEN)) != len(EVEN):
        raise ValueError("EVEN no longer compresses to its own length: choose it again")
    text_id = _id(TEXT)
    good = seal(JOB_KEY.chunk_key, text_id, b"\x01" + _zstd(TEXT), _nonce("zstd_text"))
    n = len(TEXT)
    auth, fmt = "authentication failure", "format failure"
    over = repeat_bytes(b"0123456789abcdef", CHUNK_MAX + 1)
    lying = _declare(_zstd(TEXT), n - 1)
    nonce = _nonce("ad_without_version")
    ad_without_version = nonce + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        b"\x01" + _zstd(TEXT), AD_CHUNK + text_id, nonce, JOB_KEY.chunk_key
    )
    return [
        _blob("nonce_bit_flipped", "bit 0 of the first nonce byte flipped", flip_bit(good, 0),
              text_id, n, auth, ("Tampered",)),
        _blob("ciphertext_bit_flipped", "bit 0 of the first ciphertext byte (the encoding "
              "byte) flipped", flip_bit(good, 24), text_id, n, auth, ("Tampered",)),
        _blob("ciphertext_last_byte_bit_flipped", "the last ciphertext byte before the tag",
              flip_bit(good, -17, 7), text_id, n, auth, ("Tampered",)),
        _blob("tag_bit_flipped", "bit 7 of the last tag byte flipped", flip_bit(good, -1, 7),
              text_id, n, auth, ("Tampered",)),
        _blob("wrong_chunk_id_in_ad", "opened under the id of another chunk: the associated "
              "data differs", good, _id(RANDOM), n, auth, ("WrongKey",)),
        _blob("wrong_job_key", "opened with another job's key", good, text_id, n, auth,
              ("WrongKey",), OTHER_JOB_KEY.key),
        _blob("ad_without_version_byte", "sealed with ad = label || chunk_id (no version byte)",
              ad_without_version, text_id, n, auth, ("Malformed",)),
        _blob("truncated_last_byte", "the last tag byte dropped", good[:-1], text_id, n, auth,
              ("Bounds",)),
        _blob("truncated_to_40_bytes", "shorter than nonce, encoding byte and tag (41): "
              "refused before any decryption", good[:40], text_id, n, fmt, ("Bounds",)),
        _blob("truncated_to_41_bytes", "41 bytes: no payload seals to less than 42, so the "
              "length check refuses it before any decryption", good[:41], text_id, n, fmt,
              ("Bounds",)),
        _blob("longer_than_plain_len_plus_41", "zeros appended up to plain_len + 42 bytes: no "
              "payload of plain_len bytes seals to that, refused before any decryption",
              good + bytes(n + 42 - len(good)), text_id, n, fmt, ("Bounds",)),
        _blob("empty_blob", "no bytes at all", b"", text_id, n, fmt, ("Bounds",)),
        _sealed("empty_payload", "a sealed empty payload (no encoding byte) is a 40-byte blob, "
                "refused by the length check before decryption", b"", text_id, n, fmt,
                ("Malformed",)),
        _sealed("unknown_encoding_2", "encoding byte 0x02", b"\x02" + TEXT, text_id, n, fmt,
                ("UnknownVersion",)),
        _sealed("stored_size_mismatch", "a stored body one byte longer than plain_len: its blob "
                "is plain_len + 42 bytes, so the length check refuses it before decryption",
                b"\x00" + TEXT, text_id, n - 1, fmt, ("Bounds",)),
        _sealed("stored_body_shorter_than_plain_len", "a stored body one byte shorter than "
                "plain_len: the blob's length is possible and it opens, only the body's length "
                "is wrong", b"\x00" + TEXT[:-1], _id(TEXT[:-1]), n, fmt, ("Bounds",)),
        _sealed("zstd_declared_size_mismatch", "the frame declares 305 bytes, the catalog 304",
                b"\x01" + _zstd(TEXT), text_id, n - 1, fmt, ("Bounds",)),
        _sealed("zstd_without_content_size", "a frame without its content size: the size "
                "cannot be checked before inflating", b"\x01" + _zstd(TEXT, False), text_id, n,
                fmt, ("Malformed",)),
        _sealed("zstd_content_size_lies", "the frame declares 304 bytes (as the catalog does) "
                "but inflates to 305", b"\x01" + lying, _id(TEXT[:-1]), n - 1, fmt,
                ("Bounds",)),
        _sealed("zstd_not_a_frame", "encoding 0x01 with a body that is not zstd",
                b"\x01" + RANDOM, text_id, n, fmt, ("Malformed",)),
        _sealed("zstd_trailing_byte", "one zero byte after the frame", b"\x01" + _zstd(TEXT)
                + b"\x00", text_id, n, fmt, ("Malformed",)),
        _sealed("zstd_second_frame", "an empty zstd frame after the frame",
                b"\x01" + _zstd(TEXT) + _zstd(b""), text_id, n, fmt, ("Malformed",)),
        _sealed("zstd_skippable_frame_after", "a skippable frame after the frame",
                b"\x01" + _zstd(TEXT) + SKIPPABLE_FRAME, text_id, n, fmt, ("Malformed",)),
        _sealed("zstd_skippable_frame_first", "a skippable frame, then the frame: the body does "
                "not start with a Zstandard frame", b"\x01" + SKIPPABLE_FRAME + _zstd(TEXT),
                text_id, n, fmt, ("Malformed",)),
        _sealed("zstd_dictionary_id", "the frame header names dictionary 0x7472616e; refused "
                "before inflating", b"\x01" + zstd_with_dictionary_id(_zstd(TEXT), 0x7472616E),
                text_id, n, fmt, ("Malformed",)),
        _sealed("zstd_longer_than_plaintext", "encoding 0x01 for 200 random bytes, whose frame "
                "is longer: a sender stores such a chunk; its blob is longer than plain_len + 41, "
                "so the length check refuses it first", b"\x01" + _zstd(RANDOM), _id(RANDOM),
                len(RANDOM), fmt, ("NonCanonical",)),
        _sealed("zstd_as_long_as_plaintext", "encoding 0x01 with a frame exactly as long as "
                "the plaintext (117 bytes): the body must be shorter", b"\x01" + _zstd(EVEN),
                _id(EVEN), len(EVEN), fmt, ("NonCanonical",)),
        _sealed("size_above_max", "plain_len and the frame both say MAX + 1 bytes",
                b"\x01" + _zstd(over), _id(over), CHUNK_MAX + 1, fmt, ("Bounds",)),
        _sealed("chunk_id_mismatch_after_open", "the tag and sizes are right but the plaintext "
                "is not the one the id names", b"\x01" + _zstd(TEXT), _id(TEXT[::-1]), n,
                "integrity failure", ("Malformed",)),
    ]  # fmt: skip


def _declare(frame: bytes, size: int) -> bytes:
    """``frame`` with its Frame_Content_Size field rewritten to ``size`` (RFC 8878, 3.1.1.1)."""
    descriptor = frame[4]
    single_segment = (descriptor >> 5) & 1
    field_size = {0: single_segment, 1: 2, 2: 4, 3: 8}[descriptor >> 6]
    at = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[descriptor & 3]
    value = size - 256 if field_size == 2 else size
    return frame[:at] + value.to_bytes(field_size, "little") + frame[at + field_size :]


def generate() -> dict[str, Any]:
    return vector_file(
        "envelope",
        "One sealed chunk: blob = nonce || XChaCha20-Poly1305(K_chunk, nonce, 'transferd v1 "
        "chunk' || 0x01 || chunk_id, payload), payload = encoding || body. Open: check the "
        "length, the tag, the encoding, the declared size against plain_len (from the catalog), "
        "inflate at most MAX bytes, recompute the chunk id. Seal (Deterministic vectors): "
        "blob = nonce || AEAD(..., payload).",
        valid_vectors() + invalid_vectors() + location_vectors(),
    )
