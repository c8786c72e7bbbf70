"""Every size, label and limit the format v1 specification names (protocol/SPEC.md).

Each value says what it bounds and why; changing any of them changes the format.
"""

from __future__ import annotations

from typing import Final

FORMAT_VERSION: Final = 1
"""Carried by every object (a version byte after its magic) and every manifest."""

# --- chunking (SPEC "Chunking") -------------------------------------------------------------
CHUNK_MIN: Final = 256 * 1024
"""No cut point before this many bytes: bounds per-chunk overhead (41 bytes sealed, one catalog
entry) to under 0.02%."""
CHUNK_AVG: Final = 1024 * 1024
"""FastCDC's normal size (the mask level); the realized mean is about CHUNK_AVG + CHUNK_MIN.
1 MiB keeps per-chunk Python overhead negligible at hundreds of MB/s and still deduplicates a
re-read table whose rows changed in a few places."""
CHUNK_MAX: Final = 4 * 1024 * 1024
"""A forced cut: also the largest plaintext a reader must accept, so it bounds the memory a
hostile chunk can make a reader decompress into."""
CHUNK_NORMALIZATION: Final = 1
"""FastCDC normalized-chunking level (NC): the fastcdc-rs default."""

# --- sealing --------------------------------------------------------------------------------
KEY_SIZE: Final = 32
NONCE_SIZE: Final = 24
"""XChaCha20-Poly1305: 192-bit random nonces never collide in practice, so no counter state has
to survive a crash (a resumed sender cannot reuse a nonce by restarting a counter)."""
TAG_SIZE: Final = 16
CHUNK_ID_SIZE: Final = 32
KEY_CHECK_SIZE: Final = 16
WRAPPED_SIZE: Final = KEY_SIZE + TAG_SIZE
"""K_job sealed in a stanza, of either type: 32 bytes and a 16-byte tag (SPEC 5)."""

# --- hybrid post-quantum recipients (SPEC 3.1, 5.2) ----------------------------------------
MLKEM768_PUBLIC_SIZE: Final = 1184
"""An ML-KEM-768 encapsulation key (FIPS 203, k = 3)."""
MLKEM768_CIPHERTEXT_SIZE: Final = 1088
HYBRID_PUBLIC_SIZE: Final = MLKEM768_PUBLIC_SIZE + KEY_SIZE
"""A hybrid recipient key: the ML-KEM-768 key, then the X25519 key (X-Wing's order)."""
HYBRID_ENC_SIZE: Final = MLKEM768_CIPHERTEXT_SIZE + KEY_SIZE
"""A hybrid stanza's HPKE encapsulation: the ML-KEM ciphertext, then the X25519 share."""
HYBRID_SEED_EXPANSION: Final = 96
"""SHAKE256(seed) bytes a hybrid identity expands to: d || z (64) for ML-KEM, 32 for X25519."""

BLOB_OVERHEAD: Final = NONCE_SIZE + 1 + TAG_SIZE
"""Bytes a sealed blob adds to its payload's body: nonce, encoding byte, tag (SPEC 7.3)."""
BLOB_MIN: Final = BLOB_OVERHEAD + 1
"""The shortest sealed blob: a plaintext has at least one byte, and a zstd body is never empty.
A blob is BLOB_MIN to plain_len + BLOB_OVERHEAD bytes long (SPEC 7.3, 10.2)."""

ENCODING_STORED: Final = 0x00
ENCODING_ZSTD: Final = 0x01

LABEL_CHUNK_ID: Final = b"transferd v1 chunk id"
LABEL_CHUNK_SEAL: Final = b"transferd v1 chunk seal"
LABEL_CATALOG_SEAL: Final = b"transferd v1 catalog seal"
LABEL_PACK_HEADER_SEAL: Final = b"transferd v1 pack header"
LABEL_KEY_CHECK: Final = b"transferd v1 key check"
LABEL_X25519_WRAP: Final = b"transferd v1 x25519 wrap"
LABEL_MLKEM768X25519_WRAP: Final = b"transferd v1 mlkem768x25519 wrap"
"""The HPKE ``info`` of a hybrid stanza (SPEC 5.2). It differs from age's
("age-encryption.org/mlkem768x25519") so that a stanza of one tool can never open as the other's."""
AD_CHUNK: Final = b"transferd v1 chunk"
AD_PACK_HEADER: Final = b"transferd v1 pack header"
AD_CATALOG: Final = b"transferd v1 catalog"

# --- packs ----------------------------------------------------------------------------------
PACK_MAGIC: Final = b"TDPK"
PACK_TARGET: Final = 16 * 1024 * 1024
"""A pack is closed once its blobs reach this size: 20,000 files of 4 KiB become 5 objects and 5
round trips instead of 20,000, and an S3 PUT per 16 MiB keeps request costs negligible. It is
also the unit of re-upload after a crash, so it bounds what a resume resends per upload slot."""
PACK_MAX_CHUNKS: Final = 16384
"""Bounds the pack header (16384 x 40 bytes = 640 KiB) a reader must hold."""
PACK_HEADER_ENTRY_SIZE: Final = CHUNK_ID_SIZE + 4 + 4
PACK_MAX_SIZE: Final = 64 * 1024 * 1024
"""Readers refuse larger packs: PACK_TARGET_MAX plus one sealed maximal chunk and the largest
header is below it."""
PACK_TARGET_MAX: Final = 48 * 1024 * 1024
"""The largest pack target a sender may choose (``--pack-size``): a pack closed at 48 MiB of
blobs, plus the maximal blob that crossed the mark (4 MiB and 41 bytes) and the largest header
(640 KiB), stays under PACK_MAX_SIZE, so every reader and host accepts it (SPEC 8)."""

# --- object lists and catalog ---------------------------------------------------------------
OBJECT_LIST_MAGIC: Final = b"TDOL"
OBJECT_LIST_MAX_ENTRIES: Final = 65536
"""40 bytes an entry: a segment stays under 2.6 MiB, so a verifier streams any job in bounded
memory however many packs it has."""
OBJECT_LIST_ENTRY_SIZE: Final = 32 + 8
CATALOG_MAGIC: Final = b"TDCS"
CATALOG_SEGMENT_MAX: Final = 4 * 1024 * 1024
"""Uncompressed records per catalog segment, so a reader holds at most this much catalog."""
CATALOG_CHUNKS_PER_RECORD: Final = 4096
"""Chunk references per `chunks` record: a 4 TiB file spans ~800 records instead of one line
of 400 MB."""

# --- manifest -------------------------------------------------------------------------------
MANIFEST_FIRST_LINE: Final = b"transferd-manifest v1\n"
MANIFEST_MAX_SIZE: Final = 4 * 1024 * 1024
"""A manifest lists segments, not packs, so even a petabyte job's root is a few hundred KiB."""
MANIFEST_SEQUENCE_DIGITS: Final = 20
JOB_NAME_PATTERN: Final = r"[a-z0-9][a-z0-9._-]{0,63}"
"""Job names appear in store paths and URLs: a closed alphabet leaves no way to escape them."""
