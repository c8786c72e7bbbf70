"""What every vector group shares: injected "randomness", data descriptions, the file writer.

Nothing here is random. Every key, nonce and ephemeral secret is ``det(label)``, a SHAKE-256 of a
label naming its role, so regenerating produces the same bytes and a reader can see which value
plays which part. Timestamps are fixed strings.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import blake3
from rules import RULES

from transferd.core.jobkey import JobKey
from transferd.core.keys import RecipientIdentity, SenderSecretKey

FORMAT_VERSION = 1
CREATED = "2026-11-22T21:00:00Z"

Vector = dict[str, Any]

# Flags, described once per file in its "notes" (only the flags a file uses appear there).
FLAGS = {
    "Deterministic": "every random input (key, nonce, ephemeral secret) is given, so the vector "
    "checks the producing direction too: recompute the output and compare it byte for byte",
    "Tampered": "bytes were changed after they were sealed or signed",
    "WrongKey": "the bytes are opened or checked with another key than the one that made them",
    "Malformed": "the bytes were sealed or signed honestly but break the format",
    "Bounds": "a size, count or length outside the format's limits, or not matching another",
    "NonCanonical": "a second encoding of a valid value, which decoders MUST reject",
    "PathTraversal": "a name that could make a restore write outside its target directory",
    "UnknownVersion": "a version or type this format does not define",
    "Rollback": "an older or unlinked manifest offered as the newest",
    "Mistyped": "a key text with a character changed or dropped",
    "WrongKind": "a valid key of another kind than the one expected",
    "Case": "a key text in the wrong letter case",
    "Boundary": "an input length or a value at a boundary: of BLAKE3's blocks and chunks, of "
    "FastCDC's sizes, or of a range the format allows",
    "Streaming": "the input is fed in the given pieces; the result must equal the whole input's",
    "Truncated": "records stop, or another begins, before a stream's end record or the totals",
    "NameMismatch": "the object's bytes do not hash to the name (SHA-256) it is stored under",
    "Unicode": "a name that is not valid UTF-8, carried as base64",
    "PartialRow": "a copy-text stream that stops inside a row, after its last 0x0A",
    "PostQuantum": "a hybrid ML-KEM-768 + X25519 recipient key or stanza (SPEC 3.1, 5.2)",
    "Mixed": "classic X25519 and hybrid stanzas in one recipient list",
}


def det(label: str, size: int = 32) -> bytes:
    """``size`` fixed bytes standing for randomness; ``label`` names their role."""
    return hashlib.shake_256(b"transferd v1 test vectors: " + label.encode()).digest(size)


def flip_bit(data: bytes, byte_index: int, bit: int = 0) -> bytes:
    """``data`` with one bit flipped; a negative index counts from the end."""
    out = bytearray(data)
    out[byte_index] ^= 1 << bit
    return bytes(out)


def zstd_with_dictionary_id(frame: bytes, dict_id: int) -> bytes:
    """``frame`` with a 4-byte Dictionary_ID added to its header (RFC 8878 3.1.1.1): the same
    blocks, now declared to need a dictionary."""
    descriptor = frame[4]
    if descriptor & 3:
        raise ValueError("the frame already has a Dictionary_ID")
    at = 5 + (0 if (descriptor >> 5) & 1 else 1)  # after the Window_Descriptor, if any
    did = dict_id.to_bytes(4, "little")
    return frame[:4] + bytes([descriptor | 3]) + frame[5:at] + did + frame[at:]


SKIPPABLE_FRAME = b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"note"
"""A skippable frame (RFC 8878 3.1.2) of 4 bytes: a frame, but not a Zstandard frame."""


# --- data descriptions: small inputs as hex, large ones as a generator and its hash ----------


def xof_bytes(seed: str, length: int) -> bytes:
    return blake3.blake3(seed.encode()).digest(length=length)


def repeat_bytes(pattern: bytes, length: int) -> bytes:
    return (pattern * (length // len(pattern) + 1))[:length]


def data_hex(data: bytes) -> dict[str, Any]:
    return {"hex": data.hex()}


def data_xof(seed: str, length: int) -> dict[str, Any]:
    """BLAKE3 extendable output of the UTF-8 seed: incompressible, cut like random data."""
    return {
        "generator": "blake3-xof",
        "seed": seed,
        "length": length,
        "blake3": blake3.blake3(xof_bytes(seed, length)).hexdigest(),
    }


def data_repeat(pattern: bytes, length: int) -> dict[str, Any]:
    """``pattern`` repeated and cut to ``length``: highly compressible."""
    return {
        "generator": "repeat",
        "pattern_hex": pattern.hex(),
        "length": length,
        "blake3": blake3.blake3(repeat_bytes(pattern, length)).hexdigest(),
    }


def data_value(spec: dict[str, Any]) -> bytes:
    """The bytes a data description stands for (the generator's own check of its output)."""
    if "hex" in spec:
        return bytes.fromhex(spec["hex"])
    if spec["generator"] == "blake3-xof":
        return xof_bytes(spec["seed"], spec["length"])
    return repeat_bytes(bytes.fromhex(spec["pattern_hex"]), spec["length"])


# --- vectors and files ----------------------------------------------------------------------


def vector(
    name: str,
    comment: str,
    expect: str = "success",
    flags: tuple[str, ...] = (),
    **fields: Any,
) -> Vector:
    """One vector: its one fault in ``name``, the failing layer in ``expect``, then its fields."""
    for flag in flags:
        if flag not in FLAGS:
            raise ValueError(f"undeclared flag {flag}")
    head: Vector = {
        "name": name,
        "comment": comment,
        "result": "valid" if expect == "success" else "invalid",
        "expect": expect,
        "flags": list(flags),
    }
    return head | {k: v for k, v in fields.items() if v is not None}


def vector_file(area: str, description: str, vectors: list[Vector]) -> dict[str, Any]:
    names = [v["name"] for v in vectors]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate vector names in {area}")
    rules = RULES.get(area, {})
    invalid = {v["name"] for v in vectors if v["result"] == "invalid"}
    if invalid != set(rules):
        raise ValueError(
            f"{area}: invalid vectors without a rule {sorted(invalid - set(rules))}, rules "
            f"without a vector {sorted(set(rules) - invalid)} (gen/rules.py)"
        )
    vectors = [_with_rule(v, rules) for v in vectors]
    used = sorted({f for v in vectors for f in v["flags"]})
    return {
        "area": area,
        "format_version": FORMAT_VERSION,
        "description": description,
        "notes": {flag: FLAGS[flag] for flag in used},
        "number_of_vectors": len(vectors),
        "vectors": vectors,
    }


def _with_rule(v: Vector, rules: dict[str, str]) -> Vector:
    """The vector with its ``rule`` after ``flags``, where a reader looks for it."""
    if v["result"] == "valid":
        return v
    head = {k: v[k] for k in ("name", "comment", "result", "expect", "flags")}
    return head | {"rule": rules[v["name"]]} | {k: x for k, x in v.items() if k not in head}


def write_json(path: Path, value: Any) -> None:
    """Two-space indented UTF-8 JSON, keys in the order written, one final newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, ensure_ascii=True) + "\n", encoding="utf-8")


# --- the cast: every vector file uses the same keys, so one can follow a value across files ---

IDENTITY_A = RecipientIdentity(det("recipient identity A"))
"""The recipient most vectors are encrypted to."""
IDENTITY_B = RecipientIdentity(det("recipient identity B"))
"""A second recipient (two-stanza manifests, rekey)."""
IDENTITY_C = RecipientIdentity(det("recipient identity C"))
"""A recipient nothing is encrypted to."""
HYBRID_A = RecipientIdentity.hybrid(det("hybrid identity A"))
"""The hybrid post-quantum recipient (ML-KEM-768 + X25519) hybrid vectors are encrypted to."""
HYBRID_B = RecipientIdentity.hybrid(det("hybrid identity B"))
"""A second hybrid recipient."""
SENDER = SenderSecretKey(det("sender secret"))
"""The sender who signs every valid manifest."""
SENDER_OTHER = SenderSecretKey(det("sender secret other"))
"""Another sender, whose signatures a verifier expecting SENDER must refuse."""
JOB_KEY = JobKey(det("job key"))
OTHER_JOB_KEY = JobKey(det("job key other"))
JOB_ID = det("job id", 16).hex()
