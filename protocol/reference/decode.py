"""An independent reader of transferd format v1, written from protocol/SPEC.md alone.

    python decode.py STORE JOB IDENTITY_FILE OUTPUT_DIR [--sender tds1...]

It reads the newest manifest of JOB in the store directory STORE, checks its signature and the
chain of manifests before it, unwraps the job key with the recipient identity in IDENTITY_FILE,
opens the catalog, reads the packs, opens and checks every chunk, and writes the tree (files,
directories, symlinks, modes, modification times) under OUTPUT_DIR, which must not exist or be
empty. Table streams are written to OUTPUT_DIR/_tables/<schema>.<name> (names percent-encoded):
SPEC leaves their encoding open (section 22).

A follow job's manifest (SPEC 11.5) also names change lists: they are parsed and their WAL ranges
checked to tile from the snapshot's consistent point on, without a gap, before the key is used;
then each change segment is opened under K_catalog bound to its range, its records checked, its
streams read through the packs and checked (size, BLAKE3), and its pgoutput-1 stream checked
(POSTGRESQL.md 8: framing, message kinds, transactions in order inside the range, the header's
counts). Each segment's stream, as stored, is written to
OUTPUT_DIR/_changes/<index, 6 digits>-<start LSN>-<end LSN>.pgoutput (LSNs in 16 hex digits) and
the cut-over's sequences to OUTPUT_DIR/_changes/cutover-sequences.sql; applying them to a database
is left to any pgoutput decoder (POSTGRESQL.md 8, "Restoring by hand").

Nothing here comes from transferd: only the Python standard library, PyNaCl (X25519, Ed25519,
XChaCha20-Poly1305), zstandard, and pyca cryptography >= 48 for hybrid recipients (ML-KEM-768,
X25519 and HPKE with the MLKEM768-X25519 KEM, SPEC 5.2; ML-KEM is not written by hand here).
BLAKE3 and bech32 are implemented below, BLAKE3 in pure Python
(about 1 MB/s: enough for the small copies it checks). Every failure raises DecodeError whose
``outcome`` is one of SPEC section 17 ("format failure", "authentication failure", ...), so the
test vectors can be applied to this decoder as they are to transferd.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import struct
import sys
import urllib.parse
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import nacl.bindings
import nacl.exceptions
import nacl.signing
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

CHUNK_MAX = 4194304
CATALOG_SEGMENT_MAX = 4194304
MANIFEST_MAX = 4194304
OBJECT_LIST_MAX = 65536
CHUNK_REFS_MAX = 4096


class DecodeError(Exception):
    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(f"{outcome}: {message}")
        self.outcome = outcome


def fail(outcome: str, message: str) -> NoReturn:
    raise DecodeError(outcome, message)


# --- BLAKE3 (hash and keyed modes, 32-byte output), after the BLAKE3 paper's reference code ----

_IV = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
       0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)  # fmt: skip
_PERM = (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
_ROUNDS = [tuple(range(16))]
for _ in range(6):
    _ROUNDS.append(tuple(_ROUNDS[-1][i] for i in _PERM))
_G_LANES = ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),
            (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14))  # fmt: skip
_START, _END, _PARENT, _ROOT, _KEYED = 1, 2, 4, 8, 16
_M = 0xFFFFFFFF


def _compress(
    cv: tuple[int, ...], block: bytes, counter: int, length: int, flags: int
) -> list[int]:
    m = struct.unpack("<16I", block)
    v = [*cv, *_IV[:4], counter & _M, counter >> 32, length, flags]
    for r in _ROUNDS:
        for i, (a, b, c, d) in enumerate(_G_LANES):
            x, y = m[r[2 * i]], m[r[2 * i + 1]]
            va, vb, vc, vd = v[a], v[b], v[c], v[d]
            va = (va + vb + x) & _M
            vd ^= va
            vd = (vd >> 16) | (vd << 16) & _M
            vc = (vc + vd) & _M
            vb ^= vc
            vb = (vb >> 12) | (vb << 20) & _M
            va = (va + vb + y) & _M
            vd ^= va
            vd = (vd >> 8) | (vd << 24) & _M
            vc = (vc + vd) & _M
            vb ^= vc
            vb = (vb >> 7) | (vb << 25) & _M
            v[a], v[b], v[c], v[d] = va, vb, vc, vd
    return [v[i] ^ v[i + 8] for i in range(8)] + [v[i + 8] ^ cv[i] for i in range(8)]


def _node(key: tuple[int, ...], data: bytes, counter: int, flags: int) -> tuple[Any, ...]:
    """(cv, block, counter, length, flags) of the root of ``data``'s subtree, not yet compressed."""
    chunks = max(1, (len(data) + 1023) // 1024)
    if chunks > 1:  # the left subtree holds the largest power of two of chunks that leaves some
        left = 1 << (chunks - 1).bit_length() - 1
        lcv = _compress(*_node(key, data[: left * 1024], counter, flags))[:8]
        rcv = _compress(*_node(key, data[left * 1024 :], counter + left, flags))[:8]
        return key, struct.pack("<16I", *lcv, *rcv), 0, 64, flags | _PARENT
    cv, blocks = key, [data[i : i + 64] for i in range(0, max(len(data), 1), 64)]
    for n, block in enumerate(blocks[:-1]):
        cv = tuple(_compress(cv, block, counter, 64, flags | (_START if n == 0 else 0))[:8])
    start = _START if len(blocks) == 1 else 0
    return cv, blocks[-1].ljust(64, b"\0"), counter, len(blocks[-1]), flags | start | _END


def blake3(data: bytes, key: bytes | None = None) -> bytes:
    k = _IV if key is None else struct.unpack("<8I", key)
    cv, block, counter, length, flags = _node(k, bytes(data), 0, 0 if key is None else _KEYED)
    return struct.pack("<8I", *_compress(cv, block, counter, length, flags | _ROOT)[:8])


# --- keys: bech32 (BIP 173, no length limit) and key files (SPEC 3) ----------------------------

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_KINDS = {"tdr": "recipient", "td-secret-recipient-": "recipient-identity",
          "tdrpq": "recipient-pq", "td-secret-recipient-pq-": "recipient-pq-identity",
          "tds": "sender", "td-secret-sender-": "sender-secret"}  # fmt: skip
_SECRET = {"recipient-identity", "recipient-pq-identity", "sender-secret"}
_SIZE = {"recipient-pq": 1216}  # every other key is 32 bytes (SPEC 3.2 rule 7)
_HPKE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i, g in enumerate((0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)):
            chk ^= g if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def bech32_encode(hrp: str, data: bytes) -> str:
    bits = "".join(f"{b:08b}" for b in data)
    bits += "0" * (-len(bits) % 5)
    words = [int(bits[i : i + 5], 2) for i in range(0, len(bits), 5)]
    pm = _polymod([*_hrp_expand(hrp), *words, 0, 0, 0, 0, 0, 0]) ^ 1
    return (
        hrp
        + "1"
        + "".join(_CHARSET[w] for w in words + [(pm >> 5 * (5 - i)) & 31 for i in range(6)])
    )


def decode_key(text: str, want: str | None = None) -> tuple[str, bytes]:
    """(kind, 32 bytes) of a key text, checked in the order of SPEC 3.2; ``want`` narrows it."""
    if text != text.lower() and text != text.upper():
        fail("key failure", "key mixes upper and lower case")
    low = text.lower()
    sep = low.rfind("1")
    hrp, rest = low[:sep], low[sep + 1 :]
    if sep < 1 or len(rest) < 6 or any(not 33 <= ord(c) <= 126 for c in hrp):
        fail("key failure", "not a bech32 string")
    if any(c not in _CHARSET for c in rest):
        fail("key failure", "a character outside the bech32 alphabet")
    values = [_CHARSET.index(c) for c in rest]
    if _polymod(_hrp_expand(hrp) + values) != 1:
        fail("key failure", "key is mistyped: its checksum does not match")
    bits = "".join(f"{v:05b}" for v in values[:-6])
    tail = len(bits) % 8
    if tail >= 5 or "1" in bits[len(bits) - tail :]:
        fail("key failure", "non-canonical padding")
    data = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits) - tail, 8))
    kind = _KINDS.get(hrp) or fail("key failure", f"not a transferd key (prefix {hrp!r})")
    if text != (text.upper() if kind in _SECRET else text.lower()):
        fail("key failure", f"{kind} key in the wrong case")
    if len(data) != _SIZE.get(kind, 32):
        fail("key failure", f"key has {len(data)} bytes, expected {_SIZE.get(kind, 32)}")
    if kind == "recipient-pq":
        _hybrid_public(data)  # rule 7a: the ML-KEM modulus check
    if want == "recipient" and kind == "recipient-identity":
        return "recipient", nacl.bindings.crypto_scalarmult_base(data)
    if want == "recipient" and kind in ("recipient-pq", "recipient-pq-identity"):
        return "recipient-pq", data if kind == "recipient-pq" else hybrid_public_bytes(data)
    if want == "sender" and kind == "sender-secret":
        return "sender", bytes(nacl.signing.SigningKey(data).verify_key)
    if want is not None and kind != want:
        fail("key failure", f"this is a {kind} key, a {want} key was expected")
    return kind, data


def read_key_file(text: str) -> tuple[str, bytes]:
    lines = [ln.removesuffix("\r").strip(" \t") for ln in text.split("\n")]
    keys = [ln for ln in lines if ln and not ln.startswith("#")]
    if len(keys) != 1:
        fail("key failure", f"key file holds {len(keys)} keys, expected one")
    kind, data = decode_key(keys[0])
    if kind not in _SECRET:
        fail("key failure", f"key file holds a {kind} key, not a secret key")
    return kind, data


def public_text(kind: str, secret: bytes) -> str:
    if kind == "recipient-identity":
        return bech32_encode("tdr", nacl.bindings.crypto_scalarmult_base(secret))
    if kind == "recipient-pq-identity":
        return bech32_encode("tdrpq", hybrid_public_bytes(secret))
    return bech32_encode("tds", bytes(nacl.signing.SigningKey(secret).verify_key))


def _hybrid_parts(seed: bytes) -> tuple[mlkem.MLKEM768PrivateKey, x25519.X25519PrivateKey]:
    """SPEC 3.1: SHAKE256(seed, 96) = d || z (the ML-KEM-768 seed) || the X25519 secret."""
    expanded = hashlib.shake_256(seed).digest(96)
    return (
        mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64]),
        x25519.X25519PrivateKey.from_private_bytes(expanded[64:]),
    )


def hybrid_public_bytes(seed: bytes) -> bytes:
    m, x = _hybrid_parts(seed)
    return m.public_key().public_bytes_raw() + x.public_key().public_bytes_raw()


def _hybrid_public(key: bytes) -> None:
    try:
        mlkem.MLKEM768PublicKey.from_public_bytes(key[:1184])
    except ValueError:
        fail("key failure", "hybrid key fails the ML-KEM-768 modulus check")


# --- canonical JSON, base64, hex (SPEC 1) -----------------------------------------------------


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({k for k, _ in pairs}) != len(pairs):
        raise ValueError("duplicate key")
    return dict(pairs)


def canonical_loads(raw: bytes, what: str) -> Any:
    try:
        value = json.loads(
            raw.decode("ascii"),
            object_pairs_hook=_pairs,
            parse_float=_no_float,
            parse_constant=_no_float,
            parse_int=_int64,
        )
    except (UnicodeDecodeError, ValueError) as e:
        fail("format failure", f"{what} is not JSON: {e}")
    if json.dumps(value, sort_keys=True, separators=(",", ":")).encode() != raw:
        fail("format failure", f"{what} is not canonical JSON")
    try:  # an unpaired surrogate (an escape such as \ud800 alone) is no text
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        fail("format failure", f"{what} holds an unpaired surrogate")
    return value


def _no_float(text: str) -> NoReturn:
    raise ValueError(f"non-integer number {text}")


def _int64(text: str) -> int:
    if not -(2**63) <= int(text) < 2**63:
        raise ValueError(f"integer {text} is beyond int64")
    return int(text)


def b64(value: Any, size: int | None, what: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (TypeError, ValueError):
        fail("format failure", f"{what} is not base64")
    if base64.b64encode(raw).decode() != value or (size is not None and len(raw) != size):
        fail("format failure", f"{what} is not the canonical base64 of {size} bytes")
    return raw


def is_int(value: Any, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def is_instant(v: object) -> bool:
    """YYYY-MM-DDTHH:MM:SSZ naming a real instant (SPEC 11.2): the calendar is checked too."""
    if not isinstance(v, str) or not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", v):
        return False
    try:
        datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return False
    return True


def is_hex(value: Any, digits: int) -> bool:
    return isinstance(value, str) and re.fullmatch(f"[0-9a-f]{{{digits}}}", value) is not None


# --- the job key (SPEC 4, 5, 13.2) -------------------------------------------------------------


def kdf(key: bytes, label: str) -> bytes:
    return hashlib.blake2b(label.encode(), key=key, digest_size=32).digest()


def subkeys(k_job: bytes) -> dict[str, bytes]:
    labels = {"id": "chunk id", "chunk": "chunk seal", "catalog": "catalog seal"}
    return {name: kdf(k_job, f"transferd v1 {label}") for name, label in labels.items()}


_STANZA = {"X25519": ("epk", 32, "recipient"), "mlkem768x25519": ("enc", 1120, "recipient-pq")}


def parse_stanza(s: Any) -> tuple[str, bytes, bytes, bytes]:
    """(type, recipient, epk or enc, wrapped) of a stanza, checked in the order of SPEC 5.3 (S1
    to S5), every member before any decryption."""
    if not isinstance(s, dict) or s.get("type") not in _STANZA:
        fail("format failure", "unknown stanza type")
    member, size, kind_wanted = _STANZA[s["type"]]
    if set(s) != {"type", "recipient", member, "wrapped"}:
        fail(
            "format failure", f"a {s['type']} stanza has exactly type, recipient, {member}, wrapped"
        )
    try:
        kind, recipient = decode_key(s["recipient"])
    except (DecodeError, AttributeError) as e:
        fail("format failure", f"stanza recipient: {e}")
    if kind != kind_wanted:
        fail("format failure", f"a {s['type']} stanza's recipient is not a {kind_wanted} key")
    return s["type"], recipient, b64(s[member], size, member), b64(s["wrapped"], 48, "wrapped")


def unwrap(stanzas: list[Any], kind: str, identity: bytes, key_check: bytes) -> bytes:
    """K_job for a ``recipient-identity`` or ``recipient-pq-identity`` (SPEC 13.2)."""
    parsed = [parse_stanza(s) for s in stanzas]
    hybrid = kind == "recipient-pq-identity"
    me = hybrid_public_bytes(identity) if hybrid else nacl.bindings.crypto_scalarmult_base(identity)
    want = "mlkem768x25519" if hybrid else "X25519"
    mine = [(enc, wrapped) for t, recipient, enc, wrapped in parsed if (t, recipient) == (want, me)]
    if not mine:
        fail("not a recipient", "this copy is not encrypted to this identity's key")
    for enc, wrapped in mine:
        if hybrid:
            try:  # implicit rejection: a wrong key or an altered enc fails only here
                k_job = _HPKE.decrypt(
                    enc + wrapped,
                    hpke.MLKEM768X25519PrivateKey(*_hybrid_parts(identity)),
                    info=b"transferd v1 mlkem768x25519 wrap",
                )
            except InvalidTag:
                continue
        else:
            try:
                shared = nacl.bindings.crypto_scalarmult(identity, enc)
            except nacl.exceptions.RuntimeError:  # libsodium refuses an all-zero result
                continue
            if not any(shared):
                continue
            w = hashlib.blake2b(b"transferd v1 x25519 wrap" + enc + me, key=shared, digest_size=32)
            try:
                k_job = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                    wrapped, b"transferd v1 x25519 wrap", bytes(24), w.digest()
                )
            except nacl.exceptions.CryptoError:
                continue
        if not hmac.compare_digest(kdf(k_job, "transferd v1 key check")[:16], key_check):
            fail("authentication failure", "the unwrapped job key fails key_check")
        return k_job
    fail("authentication failure", "no stanza for this identity opens")


# --- manifests (SPEC 11, 13.1, 14) -------------------------------------------------------------

_BODY = {"format", "job", "job_id", "sequence", "created", "previous", "sender", "recipients",
         "key_check", "object_lists", "catalog", "totals"}  # fmt: skip


def _refs(value: Any, what: str) -> list[tuple[str, int]]:
    ok = isinstance(value, list) and all(
        isinstance(r, dict) and set(r) == {"sha256", "size"} and is_hex(r["sha256"], 64)
        and is_int(r["size"]) for r in value
    )  # fmt: skip
    return [(r["sha256"], r["size"]) for r in value] if ok else fail("format failure", what)


def check_body(b: Any) -> dict[str, Any]:
    if not isinstance(b, dict):
        fail("format failure", "manifest body is not an object")
    if b.get("format") != 1:
        fail("unsupported version", f"unsupported format version {b.get('format')}")
    # changes: a follow manifest's (SPEC 11.5); epoch: one written under a lease (SPEC 12.2)
    if set(b) - {"changes", "epoch"} != _BODY:
        fail("format failure", "manifest body members differ from SPEC 11.2")
    if "epoch" in b and not is_int(b["epoch"], 1):
        fail("format failure", "manifest epoch is not an integer of at least 1")
    seq, prev = b["sequence"], b["previous"]
    checks = {
        "job": isinstance(b["job"], str) and re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", b["job"]),
        "job_id": is_hex(b["job_id"], 32),
        "sequence": is_int(seq, 1),
        "created": is_instant(b["created"]),
        "previous": prev is None if seq == 1 else is_hex(prev, 64),
        "recipients": isinstance(b["recipients"], list) and b["recipients"],
        "totals": isinstance(b["totals"], dict) and set(b["totals"]) == {"objects", "stored_bytes"}
        and all(is_int(v) for v in b["totals"].values()),
        "sender": isinstance(b["sender"], str),
    }  # fmt: skip
    for member, ok in checks.items():
        if not ok:
            fail("format failure", f"manifest {member} is not valid")
    try:
        kind, _ = decode_key(b["sender"])
    except DecodeError as e:
        fail("format failure", f"manifest sender: {e}")
    if kind != "sender":
        fail("format failure", "manifest sender is not a sender public key")
    b64(b["key_check"], 16, "key_check")
    recipients = [parse_stanza(s)[:2] for s in b["recipients"]]
    if len(set(recipients)) != len(recipients):
        fail("format failure", "two stanzas name one recipient")
    if not _refs(b["catalog"], "manifest catalog is not a list of object refs"):
        fail("format failure", "manifest has no catalog segment")
    _refs(b["object_lists"], "manifest object_lists is not a list of object refs")
    if "changes" in b and not _refs(b["changes"], "manifest changes is not a list of object refs"):
        fail("format failure", "manifest changes is empty")
    return b


def verify_manifest(raw: bytes, expected_sender: str | None) -> dict[str, Any]:
    if len(raw) > MANIFEST_MAX:
        fail("format failure", "manifest too large")
    first, _, rest = raw.partition(b"\n")
    if first != b"transferd-manifest v1":
        if first.startswith(b"transferd-manifest "):
            fail("unsupported version", f"unsupported format version {first[19:]!r}")
        fail("format failure", "not a transferd manifest")
    lines = rest.split(b"\n")
    if len(lines) != 3 or lines[2]:
        fail("format failure", "a manifest is exactly three lines")
    body = check_body(canonical_loads(lines[0], "manifest body"))
    sig = lines[1].split(b" ")
    if len(sig) != 3 or sig[0] != b"sig":
        fail("format failure", "signature line is not: sig <key> <signature>")
    if sig[1].decode("ascii", "replace") != body["sender"]:
        fail("signature failure", "the signature line names another key than the body")
    signature = b64(sig[2].decode("ascii", "replace"), 64, "signature")
    _, sender = decode_key(body["sender"], "sender")
    try:
        nacl.signing.VerifyKey(sender).verify(
            b"transferd-manifest v1\n" + lines[0] + b"\n", signature
        )
    except nacl.exceptions.BadSignatureError:
        fail("signature failure", f"manifest signature by {body['sender']} is invalid")
    if expected_sender is not None and body["sender"] != expected_sender:
        fail(
            "signature failure", f"manifest signed by {body['sender']}, expected {expected_sender}"
        )
    return body


def check_chain(manifests: list[bytes], expected_sender: str | None) -> dict[str, Any]:
    """The newest body of a chain of manifests starting at sequence 1 (SPEC 14, step 3); an
    epoch (SPEC 12.2, 0 when absent) never goes back along it."""
    previous: tuple[dict[str, Any], bytes] | None = None
    for raw in manifests:
        body = verify_manifest(raw, expected_sender)
        if previous is None and body["sequence"] != 1:
            fail("rollback", "the first manifest is not sequence 1")
        if previous is not None:
            prev_body, prev_raw = previous
            same = all(body[k] == prev_body[k] for k in ("job_id", "key_check"))
            if (
                not same
                or body["sequence"] != prev_body["sequence"] + 1
                or (body["previous"] != hashlib.sha256(prev_raw).hexdigest())
                or body.get("epoch", 0) < prev_body.get("epoch", 0)
            ):
                fail("rollback", f"manifest {body['sequence']} does not follow its predecessor")
        previous = body, raw
    return previous[0] if previous else fail("rollback", "no manifest")


def head_chain(manifests: dict[tuple[int, int], bytes]) -> list[bytes]:
    """The chain of the head (SPEC 12.2): from the manifest of highest (epoch, sequence) back to
    1 by each one's ``previous``; manifests off it (superseded) are left out."""
    by_hash = {hashlib.sha256(raw).hexdigest(): raw for raw in manifests.values()}
    chain = [manifests[max(manifests, key=lambda k: (k[1], k[0]))]]
    while True:
        previous = canonical_loads(chain[-1].split(b"\n")[1], "manifest body").get("previous")
        if previous is None:
            return list(reversed(chain))
        if previous not in by_hash:
            fail("rollback", "a manifest of the head's chain is missing")
        chain.append(by_hash[previous])


# --- objects (SPEC 7, 9, 10, 13.3, 13.4) -------------------------------------------------------


def inflate(body: bytes, size: int, limit: int, what: str) -> bytes:
    """The one zstd frame ``body``, declaring ``size`` (or any size up to ``limit``)."""
    if body[:4] != b"\x28\xb5\x2f\xfd":  # a Zstandard frame; a skippable frame is not one
        fail("format failure", f"{what} is not a zstd frame")
    try:
        params = zstandard.get_frame_parameters(body)
        declared = params.content_size
        if declared > limit or (size >= 0 and declared != size) or params.dict_id:
            fail("format failure", f"{what} declares {declared} bytes")
        out = zstandard.ZstdDecompressor().decompress(body, max_output_size=declared)
        rest = zstandard.ZstdDecompressor().decompressobj()
        rest.decompress(body)
    except zstandard.ZstdError as e:
        fail("format failure", f"{what} is not one zstd frame: {e}")
    if len(out) != declared or not rest.eof or rest.unused_data:
        fail("format failure", f"{what} is not exactly one zstd frame of {declared} bytes")
    return out


def open_chunk(keys: dict[str, bytes], chunk_id: bytes, blob: bytes, plain_len: int) -> bytes:
    if not 1 <= plain_len <= CHUNK_MAX or not 42 <= len(blob) <= plain_len + 41:
        fail("format failure", f"chunk of {len(blob)} bytes for {plain_len} is out of bounds")
    try:
        payload = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            blob[24:], b"transferd v1 chunk\x01" + chunk_id, blob[:24], keys["chunk"]
        )
    except nacl.exceptions.CryptoError:
        fail("authentication failure", f"chunk {chunk_id.hex()[:16]} failed authentication")
    if payload[0] == 0 and len(payload) - 1 == plain_len:
        plaintext = payload[1:]
    elif payload[0] == 1 and len(payload) - 1 < plain_len:
        plaintext = inflate(payload[1:], plain_len, CHUNK_MAX, "chunk")
    else:
        fail("format failure", f"chunk has encoding {payload[0]} and {len(payload) - 1} bytes")
    if not hmac.compare_digest(blake3(plaintext, keys["id"]), chunk_id):
        fail("integrity failure", f"chunk {chunk_id.hex()[:16]} does not hash to its id")
    return plaintext


def parse_object_list(data: bytes) -> list[tuple[str, int]]:
    if len(data) < 9 or data[:4] != b"TDOL":
        fail("format failure", "not an object list")
    if data[4] != 1:
        fail("unsupported version", f"unsupported format version {data[4]}")
    (n,) = struct.unpack(">I", data[5:9])
    if not 1 <= n <= OBJECT_LIST_MAX or len(data) != 9 + 40 * n:
        fail("format failure", "object list length does not match its count")
    entries = [
        (data[i : i + 32].hex(), int.from_bytes(data[i + 32 : i + 40]))
        for i in range(9, len(data), 40)
    ]
    if len({sha for sha, _ in entries}) != n:
        fail("format failure", "object list names a pack twice")
    return entries


_MEMBERS = {
    "dir": {"path", "mode", "mtime_ns"}, "symlink": {"path", "target", "mtime_ns"},
    "file": {"path", "mode", "mtime_ns"}, "chunks": {"c"},
    "table": {"path", "schema", "name", "format", "encoding", "columns"},
    "end": {"size", "blake3"},
    "totals": {"files", "dirs", "symlinks", "tables", "rows", "chunks", "bytes"},
}  # fmt: skip


def name(record: dict[str, Any], key: str) -> bytes:
    if key in record and isinstance(record[key], str):
        return record[key].encode()
    raw = b64(record.get(key + "_b64"), None, key + "_b64")
    try:
        raw.decode()
    except UnicodeDecodeError:
        return raw
    fail("format failure", f"{key}_b64 holds a UTF-8 name")


def safe_path(record: dict[str, Any]) -> bytes:
    path = name(record, "path")
    parts = path.split(b"/")
    if b"\0" in path or any(p in (b"", b".", b"..") for p in parts):
        fail("format failure", f"unsafe path {path!r}")
    return path


_SOURCE_KINDS = ("directory", "postgresql", "azure-blob")
_AZURE_FILE = {"etag", "content_md5", "md5_checked"}  # and, when they apply, the two below
_AZURE_FILE_OPTIONAL = {"version_id", "blob_name"}


def check_record(r: Any, what: str, source_kind: str | None = None) -> dict[str, Any]:
    """One record's type and exact members (names in either form), their types and ranges, paths
    and chunk references (SPEC 10.2, 10.3). ``source_kind``: the catalog's source kind."""
    if not isinstance(r, dict) or r.get("t") not in (*_MEMBERS, "source"):
        fail("format failure", f"{what} has no known type")
    if r["t"] == "source":
        if r.get("kind") not in _SOURCE_KINDS or not all(
            isinstance(v, str | int) and not isinstance(v, bool) for v in r.values()
        ):
            fail("format failure", f"{what}: a source of unknown kind or with a non-scalar member")
        return r
    members = {m.removesuffix("_b64") if m in ("path_b64", "target_b64") else m for m in r}
    expected = _MEMBERS[r["t"]] | ({"rows"} & members if r["t"] == "end" else set())
    azure = r["t"] == "file" and source_kind == "azure-blob"
    if azure:
        expected = expected | _AZURE_FILE | (_AZURE_FILE_OPTIONAL & members)
    if members - {"t"} != expected or len(members) != len(r):
        fail("format failure", f"{what} has other members than a {r['t']} record")
    counts = [r[k] for k in ("mode", "size", "rows") if k in r]
    if r["t"] == "totals":
        counts = [r[k] for k in _MEMBERS["totals"]]
    if not all(is_int(n) for n in counts) or r.get("mode", 0) > 0o7777:
        fail("format failure", f"{what} has a count or mode out of its range")
    if not isinstance(r.get("mtime_ns", 0), int) or isinstance(r.get("mtime_ns"), bool):
        fail("format failure", f"{what}: mtime_ns is not an integer")
    if r["t"] == "end" and not is_hex(r["blake3"], 64):
        fail("format failure", f"{what}: blake3 is not 64 hex digits")
    if r["t"] == "table" and not all(
        isinstance(r[k], str) for k in ("schema", "name", "format", "encoding")
    ):
        fail("format failure", f"{what}: schema, name, format and encoding must be strings")
    if r["t"] == "table" and not (
        isinstance(r["columns"], list)
        and all(isinstance(c, list) and len(c) == 2 and all(isinstance(x, str) for x in c)
                for c in r["columns"])
    ):  # fmt: skip
        fail("format failure", f"{what}: columns must be [name, type] pairs of strings")
    if r["t"] in ("dir", "file", "symlink", "table"):
        path = safe_path(r)
    if r["t"] == "symlink" and (not name(r, "target") or b"\0" in name(r, "target")):
        fail("format failure", f"{what}: a symlink target is not empty and holds no NUL")
    if azure:
        if not (all(isinstance(r.get(k, ""), str) for k in ("etag", "version_id", "blob_name"))
                and isinstance(r["md5_checked"], bool)):  # fmt: skip
            fail("format failure", f"{what}: a blob member of the wrong type")
        b64(r["content_md5"], 16, "content_md5")
        if ("blob_name" in r) != (path.split(b"/")[0] == b".transferd-blob-names"):
            fail("format failure", f"{what}: blob_name comes exactly with a mapped path")
    if r["t"] == "chunks":
        c = r["c"]
        if not isinstance(c, list) or not 1 <= len(c) <= CHUNK_REFS_MAX:
            fail("format failure", f"{what}: c is not a list of 1 to 4096 references")
        for ref in c:
            if not (isinstance(ref, list) and len(ref) == 5 and all(is_int(n) for n in ref[:4])
                    and 1 <= ref[3] <= CHUNK_MAX and 42 <= ref[2] <= ref[3] + 41
                    and is_hex(ref[4], 64)):  # fmt: skip
                fail("format failure", f"{what}: bad chunk reference {ref!r}")
    return r


class CatalogWalk:
    """The records of a whole catalog, fed in order: each checked on its own, then its place
    (SPEC 10.4), the streams' sizes, paths in strictly increasing byte order, and the totals
    (SPEC 13.3, 13.5)."""

    def __init__(self) -> None:
        self.kind: str | None = None  # the source's, once read
        self.stream: dict[str, Any] | None = None  # the head of the open stream
        self.size = 0
        self.totals: dict[str, Any] | None = None
        self.last_path: bytes | None = None
        self.leaves: list[bytes] = []  # symlinks, files, tables a later path may lie under
        self.counts = dict.fromkeys(_MEMBERS["totals"], 0)

    def feed(self, r: Any, what: str) -> dict[str, Any]:
        check_record(r, what, self.kind)
        t = r["t"]
        if self.totals is not None:
            fail("format failure", f"{what} comes after the totals")
        if self.kind is None:
            if t != "source":
                fail("format failure", "the catalog does not start with a source record")
            self.kind = r["kind"]
        elif t == "source":
            fail("format failure", f"{what} is a second source record")
        elif t in ("chunks", "end") and self.stream is None:
            fail("format failure", f"{what}: a {t} record outside a stream")
        elif t not in ("chunks", "end") and self.stream is not None:
            fail("integrity failure", f"{what}: a stream ends without its end record")
        elif t == "chunks":
            self.size += sum(ref[3] for ref in r["c"])
            self.counts["chunks"] += len(r["c"])
        elif t == "end":
            assert self.stream is not None  # noqa: S101 - checked above
            if ("rows" in r) != (self.stream["t"] == "table"):
                fail("format failure", f"{what}: rows belong to, and only to, a table's end")
            if r["size"] != self.size:
                fail("integrity failure", f"{what}: the size is not the sum of the chunks")
            self.counts["rows"] += r.get("rows", 0)
            self.counts["bytes"] += r["size"]
            self.stream = None
        elif t == "totals":
            if {k: r[k] for k in self.counts} != self.counts:
                fail("integrity failure", f"totals {r} do not match the records {self.counts}")
            self.totals = r
        else:
            path = safe_path(r)
            if self.last_path is not None and path <= self.last_path:
                fail("format failure", f"{path!r} does not sort after {self.last_path!r}")
            self.last_path = path
            # SPEC 10.3: nothing lies under a non-directory. Sorted, the paths under a leaf L
            # come before L + "0"; the leaves still in range nest, the innermost last.
            while self.leaves and path >= self.leaves[-1] + b"0":
                self.leaves.pop()
            if self.leaves and path.startswith(self.leaves[-1] + b"/"):
                fail("format failure", f"{path!r} lies under {self.leaves[-1]!r}, not a dir")
            if t != "dir":
                self.leaves.append(path)
            self.counts[t + "s"] += 1
            if t in ("file", "table"):
                self.stream, self.size = r, 0
        return r

    def finish(self) -> None:
        if self.stream is not None or self.totals is None:
            fail("integrity failure", "the catalog ends inside a stream or without totals")


def open_catalog(k_catalog: bytes, index: int, data: bytes) -> list[dict[str, Any]]:
    if len(data) < 45 or data[:4] != b"TDCS":
        fail("format failure", "not a catalog segment")
    if data[4] != 1:
        fail("unsupported version", f"unsupported format version {data[4]}")
    try:
        packed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            data[29:], b"transferd v1 catalog\x01" + struct.pack(">I", index), data[5:29], k_catalog
        )
    except nacl.exceptions.CryptoError:
        fail("authentication failure", f"catalog segment {index} failed authentication")
    records = inflate(packed, -1, CATALOG_SEGMENT_MAX, f"catalog segment {index}")
    if not records.endswith(b"\n"):
        fail("format failure", f"catalog segment {index} does not end with a newline")
    lines = records.split(b"\n")[:-1]
    records_ = [canonical_loads(ln, f"record {n}") for n, ln in enumerate(lines)]
    for n, r in enumerate(records_):
        if not isinstance(r, dict) or r.get("t") not in (*_MEMBERS, "source"):
            fail("format failure", f"record {n} has no known type")
    return records_


# --- a follow job's changes: change lists, change segments, pgoutput-1 (SPEC 11.5, PG 8) -------

CHANGE_LIST_MAX = 65536
CHANGE_SEGMENT_MAX = 4194304
_CHANGE_ENTRY = struct.Struct(">32sQQQB")  # sha256, size, start_lsn, end_lsn, flags: 57 bytes
_HEAD = {"t", "format", "start_lsn", "end_lsn", "transactions", "tables"}


def lsn_text(lsn: int) -> str:
    """PostgreSQL's ``%X/%X``: upper-case hex without leading zeros (SPEC 11.5)."""
    return f"{lsn >> 32:X}/{lsn & _M:X}"


def parse_lsn(text: Any, what: str) -> int:
    if not isinstance(text, str) or not re.fullmatch(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}", text):
        fail("format failure", f"{what} {text!r} is not an LSN such as 0/19A0160")
    hi, lo = text.split("/")
    lsn = int(hi, 16) << 32 | int(lo, 16)
    if lsn_text(lsn) != text:
        fail("format failure", f"{what} {text!r} is not canonical ({lsn_text(lsn)})")
    return lsn


class ChangeChain:
    """SPEC 11.5 rules 2 to 4 over the entries of every change list of a manifest, in order."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, int, int, int, bool]] = []
        self.names: set[str] = set()

    def feed(self, entry: tuple[str, int, int, int, bool]) -> None:
        sha, _, start, end, _ = entry
        if start >= end:
            fail("format failure", f"change segment {sha} covers an empty range")
        if self.entries and self.entries[-1][4]:
            fail("format failure", f"change segment {sha} comes after the cut-over segment")
        if self.entries and start != self.entries[-1][3]:
            fail("format failure", f"change segment {sha} does not start where the last ends")
        if sha in self.names:
            fail("format failure", f"change segment {sha} is listed twice")
        self.names.add(sha)
        self.entries.append(entry)


def parse_change_list(
    data: bytes, chain: ChangeChain | None = None
) -> list[tuple[str, int, int, int, bool]]:
    """(sha256, size, start_lsn, end_lsn, cut-over) of each entry, SPEC 11.5 rules 1 to 4; with
    ``chain``, the succession goes on from the lists before (else from this list alone)."""
    if len(data) < 9 or data[:4] != b"TDCL":
        fail("format failure", "not a change list")
    if data[4] != 1:
        fail("unsupported version", f"unsupported format version {data[4]}")
    (n,) = struct.unpack(">I", data[5:9])
    if not 1 <= n <= CHANGE_LIST_MAX:
        fail("format failure", f"change list counts {n} entries, not 1 to {CHANGE_LIST_MAX}")
    if len(data) != 9 + _CHANGE_ENTRY.size * n:
        fail("format failure", "change list length does not match its count")
    chain = ChangeChain() if chain is None else chain
    entries = []
    for sha, size, start, end, flags in _CHANGE_ENTRY.iter_unpack(data[9:]):
        if flags & ~1:
            fail("format failure", f"change list entry has unknown flags 0x{flags:02x}")
        entries.append((sha.hex(), size, start, end, flags == 1))
        chain.feed(entries[-1])
    return entries


def open_change_segment(
    k_catalog: bytes, entry: tuple[str, int, int, int, bool], data: bytes
) -> list[dict[str, Any]]:
    """The records of the change segment ``entry`` names (its bytes already checked against the
    entry's size and SHA-256), opened under the entry's range and checked (SPEC 11.5, 5 to 8)."""
    sha, _, start, end, _ = entry
    if len(data) < 45 or data[:4] != b"TDCG":
        fail("format failure", f"{sha} is not a change segment")
    if data[4] != 1:
        fail("unsupported version", f"unsupported format version {data[4]}")
    ad = b"transferd v1 change segment\x01" + struct.pack(">QQ", start, end)
    try:
        packed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            data[29:], ad, data[5:29], k_catalog
        )
    except nacl.exceptions.CryptoError:
        fail("authentication failure", f"change segment {sha} failed authentication")
    text = inflate(packed, -1, CHANGE_SEGMENT_MAX, f"change segment {sha}")
    if not text.endswith(b"\n"):
        fail("format failure", f"change segment {sha} does not end with a newline")
    records = [canonical_loads(ln, f"record {n}") for n, ln in enumerate(text.split(b"\n")[:-1])]
    check_change_records(records, entry)
    return records


def check_change_records(records: list[Any], entry: tuple[str, int, int, int, bool]) -> None:
    """segment = changes-head *chunks end [cutover *chunks end] (SPEC 11.5 rules 7 and 8)."""
    sha, _, start, end, flagged = entry
    what = f"change segment {sha}"
    if not all(isinstance(r, dict) for r in records):
        fail("format failure", f"{what}: a record is not an object")
    head = records[0] if records else {}
    if head.get("t") != "changes":
        fail("format failure", f"{what} does not start with its changes record")
    if set(head) != _HEAD:
        fail("format failure", f"{what}: the changes record has other members than SPEC 11.5's")
    if head["format"] != "pgoutput-1":
        fail("format failure", f"{what}: changes in format {head['format']!r}")
    lsns = parse_lsn(head["start_lsn"], "start_lsn"), parse_lsn(head["end_lsn"], "end_lsn")
    if lsns != (start, end):
        fail("format failure", f"{what}: the changes record gives another range than its entry")
    transactions, tables = head["transactions"], head["tables"]
    if not is_int(transactions):
        fail("format failure", f"{what}: transactions is not a count")
    check_tables(tables, what)
    rest, changes_size = change_stream_records(records[1:], what)
    if rest:
        cut = rest[0]
        if cut.get("t") != "cutover" or not flagged:
            fail("format failure", f"{what}: a {cut.get('t')} record after the changes' end")
        if set(cut) != {"t", "sequences"} or not is_int(cut["sequences"]):
            fail("format failure", f"{what}: a cutover record is exactly its sequences count")
        rest, _ = change_stream_records(rest[1:], what)
        if rest:
            fail("format failure", f"{what}: a {rest[0].get('t')} record after the cut-over's end")
    elif flagged:
        fail("integrity failure", f"{what} is the cut-over segment but has no cutover record")
    # transactions is 0 only in a cut-over segment with an empty changes stream and no table
    if transactions == 0 and (tables or changes_size or not flagged):
        fail("format failure", f"{what} holds no transaction: only an empty cut-over may")
    if transactions > 0 and not tables:
        fail("format failure", f"{what} holds {transactions} transactions but changes no table")


def check_tables(tables: Any, what: str) -> None:
    if not isinstance(tables, list):
        fail("format failure", f"{what}: tables is not a list")
    for n, t in enumerate(tables):
        if not (isinstance(t, list) and len(t) == 6 and all(isinstance(x, str) for x in t[:2])
                and all(is_int(x) for x in t[2:])):  # fmt: skip
            fail("format failure", f"{what}: a table is [schema, name, ins, upd, del, trunc]")
        if not any(t[2:]):
            fail("format failure", f"{what}: table {t[0]}.{t[1]} is listed with no change")
        if n and tables[n - 1][:2] >= t[:2]:
            fail("format failure", f"{what}: tables not in increasing (schema, name) order")


def change_stream_records(records: list[Any], what: str) -> tuple[list[Any], int]:
    """One stream, ``*chunks end``: (the records after its end, its size)."""
    held = 0
    for n, r in enumerate(records):
        if r.get("t") == "end":
            if set(r) != {"t", "size", "blake3"}:
                fail("format failure", f"{what}: an end record here is exactly size and blake3")
            check_record(r, f"{what} record {n}")
            if r["size"] != held:
                fail("integrity failure", f"{what}: a stream's end is not its chunks' sum")
            return records[n + 1 :], held
        if r.get("t") != "chunks":
            fail("format failure", f"{what}: a {r.get('t')} record inside a stream")
        check_record(r, f"{what} record {n}")
        held += sum(ref[3] for ref in r["c"])
    fail("integrity failure", f"{what}: a stream's end record never comes")


def change_stream_refs(records: list[dict[str, Any]]) -> list[tuple[list[Any], dict[str, Any]]]:
    """(chunk references, end record) of each stream of checked segment records: the changes,
    then the cut-over's sequences when there are."""
    streams: list[tuple[list[Any], dict[str, Any]]] = []
    refs: list[Any] = []
    for r in records:
        if r["t"] == "chunks":
            refs += r["c"]
        elif r["t"] == "end":
            streams.append((refs, r))
            refs = []
    return streams


def _frames(stream: bytes) -> list[bytes]:
    """``*( u32(len) || message )``, len >= 1 (POSTGRESQL.md 8)."""
    out, at = [], 0
    while at < len(stream):
        if len(stream) - at < 4:
            fail("format failure", f"change stream ends inside a record length at byte {at}")
        (length,) = struct.unpack_from(">I", stream, at)
        if length == 0 or len(stream) - at - 4 < length:
            fail("format failure", f"change stream record at byte {at} is empty or cut short")
        out.append(stream[at + 4 : at + 4 + length])
        at += 4 + length
    return out


class _Message:
    """A reader of one pgoutput message's fields (the manual, "Logical Replication Message
    Formats", protocol version 1); a message cut short or too long is a format failure."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 1

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.at + size > len(self.data):
            fail("format failure", f"a pgoutput {chr(self.data[0])} message is cut short")
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += size
        return value

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.at)
        if end < 0:
            fail("format failure", "a pgoutput name has no terminating NUL")
        try:
            text = self.data[self.at : end].decode()
        except UnicodeDecodeError:
            fail("format failure", "a pgoutput name is not UTF-8")
        self.at = end + 1
        return text

    def tuple_data(self, columns: int) -> None:
        if self.take(">H") != columns:
            fail("format failure", "a pgoutput tuple has another number of columns than its R")
        for _ in range(columns):
            kind = self.take("c")
            if kind == b"t":
                self.take(f"{self.take('>I')}s")
            elif kind not in (b"n", b"u"):
                fail("format failure", f"a pgoutput tuple value of kind {kind!r}")

    def done(self) -> None:
        if self.at != len(self.data):
            fail("format failure", f"a pgoutput {chr(self.data[0])} message has trailing bytes")


def check_change_stream(stream: bytes, start: int, end: int) -> tuple[int, list[list[Any]]]:
    """(transactions, [[schema, name, inserts, updates, deletes, truncates], ...] in order) of
    a pgoutput-1 stream, its rules checked (POSTGRESQL.md 8) for the segment range (start, end]."""
    relations: dict[int, tuple[str, str, int]] = {}  # relid -> schema, name, columns
    counts: dict[tuple[str, str], list[int]] = {}
    open_lsn: int | None = None  # the final LSN of the open transaction's B
    last, transactions = start, 0

    def count(relid: int, which: int) -> None:
        if relid not in relations:
            fail("format failure", f"a change to relation {relid} before its R message")
        schema, table, _ = relations[relid]
        counts.setdefault((schema, table), [0, 0, 0, 0])[which] += 1

    for message in _frames(stream):
        kind, m = chr(message[0]), _Message(message)
        if kind not in "BCRIUDT":
            fail("format failure", f"a pgoutput message of type {kind!r} in a change stream")
        if kind == "B":
            if open_lsn is not None:
                fail("format failure", "a Begin inside a transaction")
            open_lsn = m.take(">Q")
            m.take(">q")  # commit time
            m.take(">I")  # xid
            m.done()
            continue
        if open_lsn is None:
            fail("format failure", f"a {kind} message outside a transaction")
        if kind == "C":
            flags, commit_lsn, end_lsn = m.take("B"), m.take(">Q"), m.take(">Q")
            m.take(">q")  # commit time
            m.done()
            if flags != 0 or commit_lsn != open_lsn:
                fail("format failure", "a Commit at another LSN than its Begin's")
            if not last < end_lsn <= end:
                fail("integrity failure", f"a transaction ends at {lsn_text(end_lsn)}, outside "
                     f"({lsn_text(last)}, {lsn_text(end)}]")  # fmt: skip
            last, open_lsn, transactions = end_lsn, None, transactions + 1
        elif kind == "R":
            relid, schema, table = m.take(">I"), m.cstring(), m.cstring()
            if m.take("c") not in (b"d", b"n", b"f", b"i"):
                fail("format failure", "a Relation message with an unknown replica identity")
            ncols = m.take(">H")
            for _ in range(ncols):
                m.take("B")  # flags: 1 for a key column
                m.cstring()
                m.take(">I")  # type oid
                m.take(">i")  # typmod
            m.done()
            relations[relid] = (schema, table, ncols)
        elif kind == "T":
            n, _options = m.take(">I"), m.take("B")
            relids = [m.take(">I") for _ in range(n)]
            m.done()
            if not relids:
                fail("format failure", "a Truncate message of no relation")
            for relid in relids:
                count(relid, 3)
        else:
            relid = m.take(">I")
            count(relid, "IUD".index(kind))
            columns = relations[relid][2]
            old = m.take("c")
            if (kind == "I" and old != b"N") or (kind == "D" and old not in (b"K", b"O")):
                fail("format failure", f"a pgoutput {kind} message with a tuple {old!r}")
            if kind == "U" and old in (b"K", b"O"):
                m.tuple_data(columns)
                old = m.take("c")
            if kind == "U" and old != b"N":
                fail("format failure", "a pgoutput U message without its new tuple")
            m.tuple_data(columns)
            m.done()
    if open_lsn is not None:
        fail("integrity failure", "the change stream ends inside a transaction")
    return transactions, [[s, t, *c] for (s, t), c in sorted(counts.items())]


def check_change_counts(
    held: tuple[int, list[list[Any]]], transactions: int, tables: list[list[Any]]
) -> None:
    """A stream's transactions and per-table counts against its segment's changes record."""
    if held[0] != transactions:
        fail(
            "integrity failure", f"the stream holds {held[0]} transactions, its head {transactions}"
        )
    if held[1] != tables:
        fail("integrity failure", "the stream's per-table counts differ from its head's")


# --- restore (SPEC 10.4, 13.5) -----------------------------------------------------------------


def check_changes_origin(source: dict[str, Any], first: tuple[str, int, int, int, bool]) -> None:
    """Changes continue the snapshot: a slot's (R-CG-ORIGIN), from its consistent point on
    (R-CG-FROM-SNAPSHOT), SPEC 11.5."""
    if source.get("snapshot_origin") != "slot":
        fail("format failure", "a manifest with changes over a catalog not read from a slot")
    if lsn_text(first[2]) != source.get("consistent_lsn"):
        fail("integrity failure", "the first change segment does not start at the snapshot")


def check_cutover_sequences(stream: bytes, count: Any) -> None:
    """The cut-over's sequences stream holds its cutover record's count of setval lines; a
    line starting "--" is a comment (R-CG-SEQUENCES, SPEC 11.5)."""
    statements = [ln for ln in stream.split(b"\n") if ln and ln[:2] != b"--"]
    if len(statements) != count:
        fail("integrity failure", "the sequences stream holds another count of lines")


def check_stored_as(body: dict[str, Any], job: str, sequence: int, epoch: int = 0) -> None:
    """SPEC 13.1 step 7: the manifest read from jobs/<job>/manifests/<sequence>[-<epoch>] is that
    one (SPEC 12.2: an epoch absent from the body is 0)."""
    if body["job"] != job or (body["sequence"], body.get("epoch", 0)) != (sequence, epoch):
        fail("integrity failure", "the manifest names another job or sequence than its path")


def check_totals(body: dict[str, Any], packs: list[tuple[str, int]]) -> None:
    """SPEC 14 step 5: the packs the object lists name number and sum to the totals."""
    if (len(packs), sum(size for _, size in packs)) != (
        body["totals"]["objects"],
        body["totals"]["stored_bytes"],
    ):
        fail("integrity failure", "the object lists do not match the manifest's totals")


def check_location(p: int, off: int, blob_len: int, packs: list[tuple[str, int]]) -> None:
    """SPEC 13.4 step 1, before fetching: pack p exists and the blob lies among its blobs, after
    the 5-byte prefix and before the smallest header blob (84 bytes) and the trailer."""
    if p >= len(packs) or off < 5 or off + blob_len > packs[p][1] - 88:
        fail("format failure", f"chunk reference [{p}, {off}, {blob_len}] is outside its pack")


class Store:
    def __init__(self, root: Path, job: str) -> None:
        self.dir = root / "jobs" / job

    def get(self, sha: str, size: int) -> bytes:
        path = self.dir / "objects" / sha[:2] / sha
        data = path.read_bytes() if path.is_file() else fail("integrity failure", f"{sha} missing")
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
            fail("integrity failure", f"object {sha} does not match its name and size")
        return data


def restore(root: Path, job: str, identity_text: str, out: Path, sender: str | None) -> None:
    store = Store(root, job)
    names = sorted(p.name for p in (store.dir / "manifests").iterdir())
    found = [re.fullmatch(r"(\d{20})(?:-(\d{20}))?", n) for n in names]
    if not names or any(m is None or m.group(2) == "0" * 20 for m in found):
        fail("format failure", f"manifest names {names}")
    keyed = {
        (int(m.group(1)), int(m.group(2) or 0)): n for m, n in zip(found, names, strict=True) if m
    }
    manifests = {k: (store.dir / "manifests" / n).read_bytes() for k, n in keyed.items()}
    body = check_chain(head_chain(manifests), sender)
    check_stored_as(body, job, *max(keyed, key=lambda k: (k[1], k[0])))
    kind, identity = read_key_file(identity_text)
    if kind not in ("recipient-identity", "recipient-pq-identity"):
        fail("key failure", "the identity file holds a sender key")
    key_check = b64(body["key_check"], 16, "key_check")
    keys = subkeys(unwrap(body["recipients"], kind, identity, key_check))
    lists, segments = _refs(body["object_lists"], ""), _refs(body["catalog"], "")
    packs = [p for ref in lists for p in parse_object_list(store.get(*ref))]
    if len(packs) != len(set(packs)):
        fail("format failure", "a pack is listed twice")
    check_totals(body, packs)
    chain = ChangeChain()  # a follow manifest's change lists, public: checked before the key
    for ref in _refs(body.get("changes", []), ""):
        parse_change_list(store.get(*ref), chain)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise SystemExit(f"decode: {out} is not empty")
    restorer = Restorer(store, keys, packs, out)
    restorer.run(segments)
    if chain.entries:
        restorer.changes(chain.entries)


class Restorer:
    """Writes entries as the records come; symlinks and directory times last (SPEC 13.5)."""

    def __init__(self, store: Store, keys: dict[str, bytes], packs: list[Any], out: Path) -> None:
        self.store, self.keys, self.packs, self.out = store, keys, packs, out
        self.pack: tuple[int, bytes] | None = None
        self.stream: Any = None  # (fd, hasher state: plaintext chunks' ids are checked as read)
        self.later: list[dict[str, Any]] = []
        self.source: dict[str, Any] = {}

    def run(self, catalog: list[tuple[str, int]]) -> None:
        walk = CatalogWalk()
        for i, ref in enumerate(catalog):
            for n, record in enumerate(open_catalog(self.keys["catalog"], i, self.store.get(*ref))):
                walk.feed(record, f"segment {i} record {n}")  # checked before anything is written
                if record["t"] == "source":
                    self.source = record
                elif record["t"] != "totals":
                    self.entry(record)
        walk.finish()
        for record in sorted(self.later, key=lambda r: -len(safe_path(r))):
            path = os.path.join(bytes(self.out), safe_path(record))
            if record["t"] == "symlink":
                os.symlink(name(record, "target"), path)
            else:
                os.chmod(path, record["mode"] & 0o777)
            os.utime(path, ns=(record["mtime_ns"],) * 2, follow_symlinks=False)

    def target(self, path: bytes) -> bytes:
        return os.path.join(bytes(self.out), path)

    def entry(self, r: dict[str, Any]) -> None:
        t = r["t"]
        if t == "dir":
            os.makedirs(self.target(safe_path(r)), exist_ok=True)
            self.later.append(r)
        elif t == "symlink":
            self.later.append(r)
        elif t in ("file", "table"):
            if t == "file":
                path = self.target(safe_path(r))
            else:
                quoted = (urllib.parse.quote(r[k], safe="") for k in ("schema", "name"))
                path = self.target(b"_tables/" + ".".join(quoted).encode())
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            self.stream = (r, path, fd, [])
        elif t == "chunks":
            for p, off, blob_len, plain_len, cid in r["c"]:
                self.stream[3].append(self.chunk(p, off, blob_len, plain_len, bytes.fromhex(cid)))
                os.write(self.stream[2], self.stream[3][-1])
        else:
            self.end(r)

    def chunk(self, p: int, off: int, blob_len: int, plain_len: int, cid: bytes) -> bytes:
        check_location(p, off, blob_len, self.packs)
        if self.pack is None or self.pack[0] != p:
            self.pack = p, self.store.get(*self.packs[p])
        return open_chunk(self.keys, cid, self.pack[1][off : off + blob_len], plain_len)

    def changes(self, entries: list[tuple[str, int, int, int, bool]]) -> None:
        """A follow job's change segments, in list order (SPEC 11.5, POSTGRESQL.md 8): each
        stream as stored, to _changes/<index>-<start LSN>-<end LSN>.pgoutput, and the cut-over's
        sequences to _changes/cutover-sequences.sql."""
        check_changes_origin(self.source, entries[0])
        os.makedirs(self.target(b"_changes"))
        for index, entry in enumerate(entries):
            records = open_change_segment(self.keys["catalog"], entry, self.store.get(*entry[:2]))
            streams = [self.stream_bytes(refs, end) for refs, end in change_stream_refs(records)]
            head = records[0]
            held = check_change_stream(streams[0], entry[2], entry[3])
            check_change_counts(held, head["transactions"], head["tables"])
            name = f"{index:06d}-{entry[2]:016x}-{entry[3]:016x}.pgoutput"
            self.write(b"_changes/" + name.encode(), streams[0])
            if len(streams) == 2:
                cutover = next(r for r in records if r["t"] == "cutover")
                check_cutover_sequences(streams[1], cutover["sequences"])
                self.write(b"_changes/cutover-sequences.sql", streams[1])

    def stream_bytes(self, refs: list[Any], end: dict[str, Any]) -> bytes:
        content = b"".join(
            self.chunk(p, off, n, plain, bytes.fromhex(c)) for p, off, n, plain, c in refs
        )
        if end["size"] != len(content) or end["blake3"] != blake3(content).hex():
            fail("integrity failure", "a change segment's stream does not match its end record")
        return content

    def write(self, path: bytes, content: bytes) -> None:
        fd = os.open(self.target(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with open(fd, "wb") as f:
            f.write(content)

    def end(self, r: dict[str, Any]) -> None:
        start, path, fd, chunks = self.stream
        os.close(fd)
        content = b"".join(chunks)
        if r["size"] != len(content) or r["blake3"] != blake3(content).hex():
            fail("integrity failure", f"stream {path!r} does not match its end record")
        if start["t"] == "file":
            os.chmod(path, start["mode"] & 0o777)
            os.utime(path, ns=(start["mtime_ns"],) * 2)
        self.stream = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("job")
    parser.add_argument("identity", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--sender", help="the sender key (tds1...) the manifests must be signed by")
    args = parser.parse_args(argv)
    if args.sender is None:
        print(
            "decode: warning: no --sender: the manifest is checked against the key it names",
            file=sys.stderr,
        )
    try:
        restore(args.store, args.job, args.identity.read_text(), args.output, args.sender)
    except (DecodeError, OSError) as e:  # OSError: e.g. a file where the catalog puts a dir
        print(f"decode: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
