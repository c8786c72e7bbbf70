"""Seal and open one chunk: compress, then XChaCha20-Poly1305 bound to the chunk id.

The associated data binds the format version and the chunk id, so a storage host that swaps two
chunks, or serves an old chunk where a new one is named, makes the tag fail; the reader then
recomputes the chunk id from the plaintext, which ties the bytes to the catalog's reference.
"""

from __future__ import annotations

import hmac
from typing import Any

import nacl.bindings
import nacl.exceptions
import zstandard

from transferd.core import zstdframe
from transferd.core.chunking import chunk_id as compute_chunk_id
from transferd.core.constants import (
    AD_CHUNK,
    BLOB_MIN,
    CHUNK_ID_SIZE,
    CHUNK_MAX,
    ENCODING_STORED,
    ENCODING_ZSTD,
    FORMAT_VERSION,
    NONCE_SIZE,
    TAG_SIZE,
)
from transferd.core.constants import BLOB_OVERHEAD as BLOB_OVERHEAD  # used by read/reader.py
from transferd.core.jobkey import JobKey
from transferd.errors import AuthenticationError, FormatError, IntegrityError

try:  # libsodium through PyNaCl's own cffi module, the one nacl.bindings wraps (no stubs)
    import nacl._sodium as _nacl_sodium  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - every PyNaCl release since 1.0 has it
    _nacl_sodium = None
_ffi: Any = getattr(_nacl_sodium, "ffi", None)
_sodium: Any = getattr(_nacl_sodium, "lib", None)

Buffer = bytes | bytearray | memoryview


_ENCODING_STORED_BYTE = bytes([ENCODING_STORED])
_ENCODING_ZSTD_BYTE = bytes([ENCODING_ZSTD])
_AD_PREFIX = AD_CHUNK + bytes([FORMAT_VERSION])


def new_compressor(level: int) -> zstandard.ZstdCompressor:
    """A compressor writing one frame per chunk with its content size (readers bound it).

    Not thread-safe: each worker thread keeps its own.
    """
    return zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False)


def encode_payload(plaintext: Buffer, compressor: zstandard.ZstdCompressor | None) -> bytes:
    """encoding || body: zstd when the frame is smaller than the plaintext, else stored."""
    if compressor is not None:
        frame = compressor.compress(plaintext)
        if len(frame) < len(plaintext):
            return _ENCODING_ZSTD_BYTE + frame
    return _ENCODING_STORED_BYTE + bytes(plaintext)


def chunk_ad(chunk_id: bytes) -> bytes:
    return _AD_PREFIX + chunk_id


def seal(chunk_key: bytes, chunk_id: bytes, payload: bytes, nonce: bytes) -> bytes:
    """nonce || AEAD(K_chunk, nonce, "transferd v1 chunk" || 0x01 || chunk_id, payload)."""
    if len(nonce) != NONCE_SIZE or len(chunk_id) != CHUNK_ID_SIZE:
        raise ValueError("nonce must be 24 bytes and chunk id 32 bytes")
    sealed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        payload, chunk_ad(chunk_id), nonce, chunk_key
    )
    return nonce + sealed


def seal_payload(
    chunk_key: bytes,
    chunk_id: bytes,
    plaintext: Buffer,
    compressor: zstandard.ZstdCompressor | None,
    nonce: bytes,
) -> bytearray:
    """``seal(chunk_key, chunk_id, encode_payload(plaintext, compressor), nonce)``, the same
    bytes, built in one buffer: the body is copied once into the blob, which is encrypted in
    place (libsodium allows the ciphertext to be the message). The two calls allocate four
    buffers the size of the chunk and copy it three times; this is the sender's path.
    """
    if len(nonce) != NONCE_SIZE or len(chunk_id) != CHUNK_ID_SIZE:
        raise ValueError("nonce must be 24 bytes and chunk id 32 bytes")
    encoding, body = _zstd_body(plaintext, compressor)
    n = memoryview(body).nbytes
    blob = bytearray(NONCE_SIZE + 1 + n + TAG_SIZE)
    blob[:NONCE_SIZE] = nonce
    blob[NONCE_SIZE] = encoding
    blob[NONCE_SIZE + 1 : NONCE_SIZE + 1 + n] = body
    _encrypt_in_place(chunk_key, chunk_id, blob, nonce)
    return blob


# Two functions of their own so that a profile tells compressing from encrypting.


def _zstd_body(
    plaintext: Buffer, compressor: zstandard.ZstdCompressor | None
) -> tuple[int, Buffer]:
    """(encoding, body): the zstd frame when it is shorter than the plaintext, else stored."""
    if compressor is not None:
        frame = compressor.compress(plaintext)
        if len(frame) < memoryview(plaintext).nbytes:
            return ENCODING_ZSTD, frame
    return ENCODING_STORED, plaintext


def _encrypt_in_place(chunk_key: bytes, chunk_id: bytes, blob: bytearray, nonce: bytes) -> None:
    """Encrypt ``blob[NONCE_SIZE:-TAG_SIZE]`` in place and write its tag after it."""
    ad = chunk_ad(chunk_id)
    mlen = len(blob) - NONCE_SIZE - TAG_SIZE
    if _ffi is None or _sodium is None:  # pragma: no cover - see the import
        payload = bytes(blob[NONCE_SIZE : NONCE_SIZE + mlen])
        blob[:] = seal(chunk_key, chunk_id, payload, nonce)
        return
    message = _ffi.from_buffer("unsigned char[]", blob, require_writable=True) + NONCE_SIZE
    if _sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        message, _ffi.NULL, message, mlen, ad, len(ad), _ffi.NULL, nonce, chunk_key
    ):  # pragma: no cover - libsodium's encryption cannot fail
        raise RuntimeError("libsodium refused to encrypt a chunk")


def open_payload(chunk_key: bytes, chunk_id: bytes, blob: Buffer) -> bytes:
    """The payload of a sealed blob; AuthenticationError if the tag fails (wrong key or altered)."""
    if len(blob) < BLOB_OVERHEAD:
        raise FormatError(f"chunk {chunk_id.hex()[:16]} is truncated: {len(blob)} bytes")
    view = memoryview(blob)
    try:
        return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            bytes(view[NONCE_SIZE:]), chunk_ad(chunk_id), bytes(view[:NONCE_SIZE]), chunk_key
        )
    except nacl.exceptions.CryptoError:
        raise AuthenticationError(f"chunk {chunk_id.hex()[:16]} failed authentication") from None


def decode_payload(payload: bytes, plain_len: int, chunk_id: bytes) -> bytes:
    """The plaintext of a payload, refusing any size other than ``plain_len`` before inflating."""
    if not 1 <= plain_len <= CHUNK_MAX:
        raise FormatError(f"chunk {chunk_id.hex()[:16]} claims {plain_len} bytes, out of bounds")
    if not payload:
        raise FormatError(f"chunk {chunk_id.hex()[:16]} has an empty payload")
    encoding, body = payload[0], memoryview(payload)[1:]
    if encoding == ENCODING_STORED:
        if len(body) != plain_len:
            raise FormatError(
                f"chunk {chunk_id.hex()[:16]} holds {len(body)} bytes, expected {plain_len}"
            )
        return bytes(body)
    if encoding != ENCODING_ZSTD:
        raise FormatError(f"chunk {chunk_id.hex()[:16]} has unknown encoding {encoding}")
    what = f"chunk {chunk_id.hex()[:16]}"
    if len(body) >= plain_len:  # a sender stores what zstd does not shrink (SPEC 7.2)
        raise FormatError(f"{what} is compressed to {len(body)} bytes, not fewer than {plain_len}")
    declared = zstdframe.declared_size(body, what)
    if declared != plain_len:
        raise FormatError(f"{what} declares {declared} bytes, expected {plain_len}")
    return zstdframe.inflate(body, plain_len, what)


def check_lengths(chunk_id: bytes, blob_len: int, plain_len: int) -> None:
    """Refuse, before decrypting anything, a blob no payload of ``plain_len`` bytes seals to:
    1 <= plain_len <= CHUNK_MAX and BLOB_MIN <= blob_len <= plain_len + BLOB_OVERHEAD."""
    if not 1 <= plain_len <= CHUNK_MAX:
        raise FormatError(f"chunk {chunk_id.hex()[:16]} claims {plain_len} bytes, out of bounds")
    if not BLOB_MIN <= blob_len <= plain_len + BLOB_OVERHEAD:
        raise FormatError(
            f"chunk {chunk_id.hex()[:16]} is {blob_len} bytes sealed, impossible for {plain_len} "
            f"bytes of plaintext ({BLOB_MIN} to {plain_len + BLOB_OVERHEAD})"
        )


def seal_chunk(
    job_key: JobKey,
    plaintext: Buffer,
    nonce: bytes,
    compressor: zstandard.ZstdCompressor | None,
) -> tuple[bytes, bytes]:
    """(chunk_id, sealed blob) of one plaintext chunk."""
    cid = compute_chunk_id(job_key.chunk_id_key, plaintext)
    return cid, seal(job_key.chunk_key, cid, encode_payload(plaintext, compressor), nonce)


def open_chunk(job_key: JobKey, chunk_id: bytes, blob: Buffer, plain_len: int) -> bytes:
    """The verified plaintext of a sealed blob named ``chunk_id`` in the catalog.

    Checks, in this order: lengths, tag, encoding, declared size, decompressed size, chunk id.
    """
    check_lengths(chunk_id, len(blob), plain_len)
    payload = open_payload(job_key.chunk_key, chunk_id, blob)
    plaintext = decode_payload(payload, plain_len, chunk_id)
    actual = compute_chunk_id(job_key.chunk_id_key, plaintext)
    if not hmac.compare_digest(actual, chunk_id):
        raise IntegrityError(f"chunk {chunk_id.hex()[:16]} does not hash to its id")
    return plaintext
