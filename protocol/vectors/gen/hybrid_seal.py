"""HPKE SealBase with the MLKEM768-X25519 KEM, from injected randomness: the generator's own.

transferd seals hybrid stanzas with pyca's HPKE, which draws its randomness inside OpenSSL and
cannot be given it. So that hybrid vectors are Deterministic (both directions, SPEC 24), this
module builds the same stanza from the encapsulation's two random inputs:

- ``m``, the 32-byte ML-KEM-768 encapsulation seed (FIPS 203 ML-KEM.Encaps_internal), through
  kyber-py, a pure-Python FIPS 203 (a dev dependency, used nowhere else);
- ``e``, the 32-byte X25519 ephemeral secret;

then X-Wing's combiner and RFC 9180's base-mode key schedule, from pyca primitives. Every vector
made here is also opened by transferd (pyca, that is OpenSSL), which checks this code line by
line against an independent implementation: a mistake here makes the vectors fail.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from kyber_py.ml_kem import ML_KEM_768

XWING_LABEL = b"\\.//^\\"
"""X-Wing's combiner label, the six bytes 5c 2e 2f 2f 5e 5c."""
SUITE_ID = b"HPKE" + struct.pack(">HHH", 0x647A, 0x0001, 0x0003)
"""RFC 9180 suite_id: KEM MLKEM768-X25519 (0x647a), HKDF-SHA256 (0x0001), ChaCha20Poly1305
(0x0003)."""


def _labeled_extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(32), b"HPKE-v1" + SUITE_ID + label + ikm, hashlib.sha256).digest()


def _labeled_expand(prk: bytes, label: bytes, info: bytes, size: int) -> bytes:
    message = struct.pack(">H", size) + b"HPKE-v1" + SUITE_ID + label + info
    out, block, counter = b"", b"", 1
    while len(out) < size:
        block = hmac.new(prk, block + message + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:size]


def seal(plaintext: bytes, public: bytes, info: bytes, m: bytes, e: bytes) -> bytes:
    """enc || ciphertext of HPKE SealBase(pkR = public, info, aad = "", plaintext), with the
    ML-KEM seed ``m`` and the X25519 ephemeral secret ``e``."""
    pk_m, pk_x = public[:1184], public[1184:]
    ss_m, ct_m = ML_KEM_768._encaps_internal(pk_m, m)
    ephemeral = x25519.X25519PrivateKey.from_private_bytes(e)
    ct_x = ephemeral.public_key().public_bytes_raw()
    ss_x = ephemeral.exchange(x25519.X25519PublicKey.from_public_bytes(pk_x))
    shared = hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + XWING_LABEL).digest()
    context = (
        b"\x00"  # mode_base
        + _labeled_extract(b"", b"psk_id_hash", b"")
        + _labeled_extract(b"", b"info_hash", info)
    )
    secret = _labeled_extract(shared, b"secret", b"")
    key = _labeled_expand(secret, b"key", context, 32)
    nonce = _labeled_expand(secret, b"base_nonce", context, 12)
    return ct_m + ct_x + ChaCha20Poly1305(key).encrypt(nonce, plaintext, b"")
