"""A copy: many jobs sent by many agents into one store, bound by one secret and one signed root.

**The copy secret** ``K_copy`` (32 random bytes, text ``TD-SECRET-COPY-1…``) is shared by every
agent of the copy, with the sender key. Each job's key and id are derived from it, so that any
agent can take over any job and adopt the packs another agent stored (send/resume.py opens their
headers with the job key)::

    K_job    = KDF(K_copy, "transferd v1 job key" || job)
    job_id   = hex(KDF(K_copy, "transferd v1 job id" || job)[:16])
    copy_id  = hex(KDF(K_copy, "transferd v1 copy id" || copy)[:16])

K_copy is therefore exactly as sensitive as every job key of the copy together (THREATS.md).

**The copy manifest** names every job of the copy and the newest manifest of each that an agent
recorded, and is signed by the sender key, numbered and hash-chained like a job manifest::

    transferd-copy v1\\n
    <canonical JSON body>\\n
    sig <tds1… sender key> <base64 Ed25519 signature of the two lines above>\\n

    {"format":1, "copy":"snds-2026", "copy_id":"<32 hex>", "sequence":N, "created":"<RFC 3339>",
     "previous":"<hex SHA-256 of manifest N-1>" | null, "sender":"tds1…",
     "jobs":[{"job":"dcir-2019","sequence":3,"sha256":"<hex SHA-256 of that job manifest>"},
             {"job":"pmsi-2019","sequence":null,"sha256":null}, …]}

``jobs`` lists every job of the plan in job-name order, each once; a job not finished yet has
null ``sequence`` and ``sha256``. An entry naming a manifest written under a lease also gives its
``"epoch"`` (SPEC 12.2; absent for epoch 0), so that it names the manifest's key exactly. Stored
as copy record ``manifests/<N>`` (stores/base.py, 7).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from transferd.core import bech32, canonical, signed
from transferd.core.constants import FORMAT_VERSION, KEY_SIZE
from transferd.core.jobkey import JobKey, kdf
from transferd.core.keys import SenderPublicKey, SenderSecretKey, parse_key_text
from transferd.core.manifest import check_job_name
from transferd.errors import (
    FormatError,
    KeyFormatError,
    RollbackError,
    UnsupportedVersionError,
)

HRP_COPY_SECRET = "td-secret-copy-"  # noqa: S105 - a prefix, not a secret
LABEL_JOB_KEY = b"transferd v1 job key"
LABEL_JOB_ID = b"transferd v1 job id"
LABEL_COPY_ID = b"transferd v1 copy id"
COPY_MANIFEST_FIRST_LINE = b"transferd-copy v1\n"
_FIELDS = frozenset(
    {"format", "copy", "copy_id", "sequence", "created", "previous", "sender", "jobs"}
)
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class CopySecret:
    """K_copy. ``repr`` never shows it."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) != KEY_SIZE:
            raise KeyFormatError(f"a copy secret must be {KEY_SIZE} bytes")

    def job_key(self, job: str) -> JobKey:
        return JobKey(kdf(self.secret, LABEL_JOB_KEY + check_job_name(job).encode()))

    def job_id(self, job: str) -> str:
        return kdf(self.secret, LABEL_JOB_ID + check_job_name(job).encode())[:16].hex()

    def copy_id(self, copy: str) -> str:
        return kdf(self.secret, LABEL_COPY_ID + check_job_name(copy).encode())[:16].hex()

    def to_text(self) -> str:
        return bech32.encode(HRP_COPY_SECRET, self.secret).upper()


def parse_copy_secret(text: str) -> CopySecret:
    """``TD-SECRET-COPY-1…`` (upper case, checksummed) to the secret."""
    stripped = text.strip()
    if stripped != stripped.upper():
        raise KeyFormatError("a copy secret must be written in upper case")
    hrp, data = bech32.decode(stripped)
    if hrp != HRP_COPY_SECRET:
        raise KeyFormatError(f"key {stripped[:12]}… is not a copy secret (TD-SECRET-COPY-1…)")
    return CopySecret(data)


def render_copy_secret_file(secret: CopySecret, copy: str, created: str) -> str:
    return f"# transferd copy secret of copy {copy}\n# created: {created}\n{secret.to_text()}\n"


def parse_copy_secret_file(text: str) -> CopySecret:
    keys = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if len(keys) != 1:
        raise KeyFormatError(f"a copy secret file holds exactly one key line, not {len(keys)}")
    return parse_copy_secret(keys[0])


@dataclass(frozen=True)
class CopyJobRef:
    """One job of the copy and its newest recorded manifest (None: not finished yet)."""

    job: str
    sequence: int | None = None
    sha256: str | None = None
    epoch: int = 0
    """The lease epoch of the manifest named (SPEC 12.2): 0 for one written without a lease."""

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"job": self.job, "sequence": self.sequence, "sha256": self.sha256}
        if self.epoch:
            doc["epoch"] = self.epoch
        return doc

    @property
    def rank(self) -> tuple[int, int]:
        """Entries only move to a higher (epoch, sequence): the order of a job's heads."""
        return (self.epoch, self.sequence or 0)

    @classmethod
    def from_json(cls, value: Any) -> CopyJobRef:
        if not isinstance(value, dict) or not (
            {"job", "sequence", "sha256"} <= set(value) <= {"job", "sequence", "sha256", "epoch"}
        ):
            raise FormatError("copy manifest job entries are {job, sequence, sha256[, epoch]}")
        seq, digest = value["sequence"], value["sha256"]
        if (seq is None) != (digest is None):
            raise FormatError("copy manifest job entry: sequence and sha256 are both set or null")
        if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 1):
            raise FormatError("copy manifest job entry: sequence must be a positive integer")
        if digest is not None and (not isinstance(digest, str) or not _HEX64.fullmatch(digest)):
            raise FormatError("copy manifest job entry: sha256 must be 64 lowercase hex digits")
        epoch = value.get("epoch", 0)
        if "epoch" in value and (
            seq is None or not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1
        ):
            raise FormatError(
                "copy manifest job entry: epoch is an integer of at least 1, given only with "
                "a sequence, or absent"
            )
        return cls(check_job_name(value["job"]), seq, digest, epoch)


@dataclass(frozen=True)
class CopyManifestBody:
    copy: str
    copy_id: str
    sequence: int
    created: str
    previous: str | None
    sender: str
    jobs: tuple[CopyJobRef, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "copy": self.copy,
            "copy_id": self.copy_id,
            "sequence": self.sequence,
            "created": self.created,
            "previous": self.previous,
            "sender": self.sender,
            "jobs": [j.to_json() for j in self.jobs],
        }

    @classmethod
    def from_json(cls, value: Any) -> CopyManifestBody:
        if not isinstance(value, dict):
            raise FormatError("copy manifest body is not a JSON object")
        if value.get("format") != FORMAT_VERSION:
            raise UnsupportedVersionError(value.get("format"), "copy manifest")
        if set(value) != _FIELDS:
            raise FormatError(f"copy manifest body fields wrong: {sorted(set(value) ^ _FIELDS)}")
        copy_id, seq, created, prev = (
            value["copy_id"], value["sequence"], value["created"], value["previous"]
        )  # fmt: skip
        if not isinstance(copy_id, str) or not re.fullmatch(r"[0-9a-f]{32}", copy_id):
            raise FormatError("copy manifest copy_id must be 32 lowercase hex digits")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise FormatError("copy manifest sequence must be a positive integer")
        if not canonical.is_utc_timestamp(created):
            raise FormatError("copy manifest created must be RFC 3339 UTC")
        if (prev is None) != (seq == 1) or (
            prev is not None and (not isinstance(prev, str) or not _HEX64.fullmatch(prev))
        ):
            raise FormatError("copy manifest previous must be null at sequence 1, else 64 hex")
        if not isinstance(value["jobs"], list):
            raise FormatError("copy manifest jobs must be a list")
        jobs = tuple(CopyJobRef.from_json(j) for j in value["jobs"])
        names = [j.job for j in jobs]
        if names != sorted(set(names)):
            raise FormatError("copy manifest jobs must be in name order, each once")
        sender = value["sender"]
        try:
            key = parse_key_text(sender) if isinstance(sender, str) else None
        except KeyFormatError as e:
            raise FormatError(f"copy manifest sender: {e.message}") from None
        if not isinstance(key, SenderPublicKey):
            raise FormatError("copy manifest sender must be a sender public key (tds1…)")
        return cls(check_job_name(value["copy"]), copy_id, seq, created, prev, sender, jobs)

    def job(self, name: str) -> CopyJobRef | None:
        return next((j for j in self.jobs if j.job == name), None)


@dataclass(frozen=True)
class SignedCopyManifest:
    body: CopyManifestBody
    raw: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def sign(body: CopyManifestBody, sender: SenderSecretKey) -> bytes:
    if body.sender != sender.public().to_text():
        raise ValueError("copy manifest body names another sender")
    return signed.sign_text(COPY_MANIFEST_FIRST_LINE, body.to_json(), sender)


def parse(data: bytes) -> SignedCopyManifest:
    """Parse a copy manifest and check its signature against the sender it names: the checks,
    their order and their errors are a job manifest's (SPEC 12.1, 13.1)."""
    body = signed.open_text(
        data,
        first_line=COPY_MANIFEST_FIRST_LINE,
        what="copy manifest",
        parse_body=CopyManifestBody.from_json,
        sender_of=lambda b: b.sender,
    )
    return SignedCopyManifest(body, data)


def verify(data: bytes, expected: SenderPublicKey) -> SignedCopyManifest:
    copy_manifest = parse(data)
    signed.check_signer(copy_manifest.body.sender, expected, "copy manifest")
    return copy_manifest


def check_succession(previous: SignedCopyManifest | None, current: SignedCopyManifest) -> None:
    """``current`` directly follows ``previous``: same copy id, next sequence, hash-linked."""
    body = current.body
    if previous is None:
        if body.sequence != 1:
            raise RollbackError(f"copy manifest {body.sequence} has no predecessor")
        return
    if body.copy_id != previous.body.copy_id:
        raise RollbackError(f"copy manifest {body.sequence} belongs to another copy")
    if body.sequence != previous.body.sequence + 1 or body.previous != previous.digest:
        raise RollbackError(
            f"copy manifest {body.sequence} does not follow copy manifest {previous.body.sequence}"
        )
