"""Load protocol/vectors/: every file, every vector, strictly.

Like age's testkit (FiloSottile/age:testkit_test.go, ``parseVector``), nothing is skipped: a field
this loader does not know, an outcome it cannot map to an error class, or a file of an unknown area
is a failure, so a vector can never silently test less than it says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from transferd.errors import (
    AuthenticationError,
    FormatError,
    IntegrityError,
    KeyFormatError,
    NotARecipientError,
    RollbackError,
    SignatureError,
    UnsupportedVersionError,
)

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "protocol" / "vectors"

EXPECT: dict[str, type[Exception] | None] = {
    "success": None,
    "key failure": KeyFormatError,
    "format failure": FormatError,
    "unsupported version": UnsupportedVersionError,
    "not a recipient": NotARecipientError,
    "authentication failure": AuthenticationError,
    "integrity failure": IntegrityError,
    "signature failure": SignatureError,
    "rollback": RollbackError,
}
"""Each outcome names one error class, matched exactly (not a subclass): SPEC section 17."""

FILE_FIELDS = {"area", "format_version", "description", "notes", "number_of_vectors", "vectors"}
COMMON = {"name", "comment", "result", "expect", "flags"}
RULE = "rule"
"""The rule of SPEC Appendix D an invalid vector breaks; only invalid vectors have one."""

# area -> (fields every vector has, fields some vectors have)
AREAS: dict[str, tuple[set[str], set[str]]] = {
    "keys": ({"text", "parse_as"}, {"kind", "key_hex", "public"}),
    "wrap": ({"identity", "stanzas", "key_check"}, {"job_key", "wraps", "subkeys"}),
    "chunk_ids": ({"job_key", "chunk_id_key", "plaintext", "chunk_id", "blake3"}, set()),
    "chunking": ({"input", "chunk_lengths"}, {"feed"}),
    "envelope": (
        {"job_key", "chunk_id", "plain_len", "blob"},
        {"nonce", "payload", "plaintext", "pack_size", "offset", "pack_index", "pack_count"},
    ),
    "pack": ({"job_key", "pack", "sha256"}, {"header_nonce", "entries", "plaintexts"}),
    "object_list": ({"segment", "sha256"}, {"entries"}),
    "catalog": ({"job_key", "index", "segment", "sha256"}, {"nonce", "records", "paths"}),
    "catalog_stream": ({"segments"}, {"paths"}),
    "stream": ({"job_key", "chunks", "end"}, {"plaintext"}),
    "manifest": (
        {"manifest", "sha256", "expected_sender"},
        {"body", "sender_secret", "history", "newest_seen", "stored_as", "object_list_segments"},
    ),
    "copy": (
        {"store", "job", "identity_file", "expected_sender", "newest_sequence", "job_key", "tree"},
        {"newest_epoch", "superseded"},
    ),
    "rowset": ({"salt", "input"}, {"feed", "row_hashes", "rows", "sum", "digest"}),
    "copy_secret": ({"text"}, {"copy", "copy_id", "jobs"}),
    "copy_manifest": (
        {"manifest", "sha256", "expected_sender"},
        {"body", "sender_secret", "history"},
    ),
    "changes": (
        {"object"},
        {
            "list",
            "sha256",
            "entries",
            "job_key",
            "entry",
            "segment",
            "nonce",
            "records",
            "stream",
            "start_lsn",
            "end_lsn",
            "transactions",
            "tables",
            "source",
            "sequences",
        },
    ),
    "lease_epoch": (
        {"manifest", "sha256", "expected_sender", "stored_as"},
        {"body", "sender_secret", "history"},
    ),
}

VALID_NEEDS: dict[str, set[str]] = {
    "keys": {"kind", "key_hex"},
    "wrap": {"job_key"},
    "envelope": {"plaintext"},
    "pack": {"entries", "plaintexts", "header_nonce"},
    "object_list": {"entries"},
    "catalog": {"records", "paths"},
    "catalog_stream": {"paths"},
    "stream": {"plaintext"},
    "manifest": {"body", "sender_secret"},
    "rowset": {"rows", "sum", "digest"},
    "copy_secret": {"copy", "copy_id", "jobs"},
    "copy_manifest": {"body", "sender_secret"},
    "lease_epoch": {"body", "sender_secret"},
}
"""Fields without which a valid vector would check nothing beyond "it did not fail"."""


@dataclass(frozen=True)
class VectorFile:
    path: Path
    area: str
    content: dict[str, Any]


def vector_files() -> list[VectorFile]:
    """Every vector file: protocol/vectors/*.json but the schema, and copy/copy.json."""
    paths = [p for p in sorted(VECTORS.glob("*.json")) if p.name != "schema.json"]
    paths.append(VECTORS / "copy" / "copy.json")
    files = []
    for path in paths:
        content = json.loads(path.read_text(encoding="utf-8"))
        files.append(VectorFile(path, content["area"], content))
    return files


def check_file(vf: VectorFile) -> None:
    """The file's own fields: known area, declared flags, the count it states."""
    content = vf.content
    assert set(content) == FILE_FIELDS, f"{vf.path.name}: fields {sorted(content)}"
    assert vf.area in AREAS, f"{vf.path.name}: unknown area {vf.area!r}"
    assert content["format_version"] == 1
    assert content["number_of_vectors"] == len(content["vectors"])
    used = {flag for v in content["vectors"] for flag in v["flags"]}
    assert used == set(content["notes"]), f"{vf.path.name}: notes {sorted(content['notes'])}"
    names = [v["name"] for v in content["vectors"]]
    assert len(names) == len(set(names)), f"{vf.path.name}: duplicate names"


def check_vector(area: str, vector: dict[str, Any]) -> type[Exception] | None:
    """Refuse unknown or missing fields and unknown outcomes; return the expected error class."""
    required, optional = AREAS[area]
    fields = set(vector)
    unknown = fields - COMMON - {RULE} - required - optional
    assert not unknown, f"unknown field(s) {sorted(unknown)}: the loader must learn them first"
    missing = (COMMON | required) - fields
    assert not missing, f"missing field(s) {sorted(missing)}"
    assert vector["expect"] in EXPECT, f"unknown outcome {vector['expect']!r}"
    assert vector["result"] in ("valid", "invalid"), f"unknown result {vector['result']!r}"
    assert (vector["result"] == "valid") == (vector["expect"] == "success"), (
        f"result {vector['result']} contradicts outcome {vector['expect']}"
    )
    assert (RULE in fields) == (vector["result"] == "invalid"), (
        "an invalid vector names the rule it breaks, a valid one none"
    )
    if vector["result"] == "valid":
        lacking = VALID_NEEDS.get(area, set()) - fields
        assert not lacking, f"a valid vector without {sorted(lacking)}"
    return EXPECT[vector["expect"]]


def data(spec: dict[str, Any]) -> bytes:
    """The bytes a data description stands for (README.md, "Data")."""
    if set(spec) == {"hex"}:
        return bytes.fromhex(spec["hex"])
    generator = spec.get("generator")
    if generator == "blake3-xof":
        assert set(spec) == {"generator", "seed", "length", "blake3"}, sorted(spec)
        out = blake3.blake3(spec["seed"].encode()).digest(length=spec["length"])
    elif generator == "repeat":
        assert set(spec) == {"generator", "pattern_hex", "length", "blake3"}, sorted(spec)
        pattern = bytes.fromhex(spec["pattern_hex"])
        out = (pattern * (spec["length"] // len(pattern) + 1))[: spec["length"]]
    else:
        raise AssertionError(f"unknown data description {sorted(spec)}")
    assert blake3.blake3(out).hexdigest() == spec["blake3"], "generator output hash differs"
    return out
