"""The signed manifest: the root of one version of a job, checkable with the sender's public key.

    transferd-manifest v1\\n
    <canonical JSON body>\\n
    sig <tds1… sender key> <base64 Ed25519 signature of the two lines above>\\n

The body names the job, its sequence number and the hash of the previous manifest (so the history
of a job is a chain and an older manifest cannot pass as the newest), the recipient stanzas, and
the object-list and catalog segments by SHA-256 (so every stored byte hangs from this signature).

**Epochs** (SPEC 12.2). A manifest written by an agent of a copy under a lease carries that
lease's epoch, in its body (``"epoch": E``, E >= 1) and in its name
(``<sequence>-<epoch>``, each 20 digits); one written without a lease has epoch 0 and neither.
Two holders of a job, one of them stale, therefore never write the same key, and the head of a
job is its manifest of highest (epoch, sequence): whatever a holder that lost its lease writes
after the one that took over stored anything is never the newest.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from transferd.core import canonical, signed
from transferd.core.constants import (
    FORMAT_VERSION,
    JOB_NAME_PATTERN,
    KEY_CHECK_SIZE,
    MANIFEST_FIRST_LINE,
    MANIFEST_SEQUENCE_DIGITS,
)
from transferd.core.jobkey import Stanza, b64decode_strict
from transferd.core.keys import SenderPublicKey, SenderSecretKey, parse_key_text
from transferd.core.objectlist import ObjectRef
from transferd.errors import (
    FormatError,
    IntegrityError,
    KeyFormatError,
    RollbackError,
    UnsupportedVersionError,
)

_JOB_NAME = re.compile(JOB_NAME_PATTERN)
_BODY_FIELDS = frozenset(
    {
        "format", "job", "job_id", "sequence", "created", "previous", "sender",
        "recipients", "key_check", "object_lists", "catalog", "totals",
    }
)  # fmt: skip
_OPTIONAL_FIELDS = frozenset({"changes", "epoch"})
_MAX_NUMBER = 10**MANIFEST_SEQUENCE_DIGITS - 1
_NAME = re.compile(
    rf"([0-9]{{{MANIFEST_SEQUENCE_DIGITS}}})(?:-([0-9]{{{MANIFEST_SEQUENCE_DIGITS}}}))?"
)


class ManifestKey(NamedTuple):
    """Where a manifest is stored: its sequence, and the lease epoch of its writer (0: a send
    that holds no lease). Ordered as stored (sequence, then epoch); ``rank`` orders heads."""

    sequence: int
    epoch: int = 0

    @property
    def name(self) -> str:
        return manifest_name(self.sequence, self.epoch)

    @property
    def rank(self) -> tuple[int, int]:
        """The head of a job is its manifest of highest (epoch, sequence): epoch first."""
        return (self.epoch, self.sequence)

    def __str__(self) -> str:
        return f"{self.sequence}" if not self.epoch else f"{self.sequence} (epoch {self.epoch})"


def parse_manifest_name(name: str) -> ManifestKey | None:
    """The key a manifest file or object name gives, or None for a name that is none
    (``<sequence, 20 digits>`` or ``<sequence>-<epoch>``, both at least 1)."""
    m = _NAME.fullmatch(name)
    if m is None:
        return None
    sequence, epoch = int(m.group(1)), int(m.group(2) or 0)
    if sequence < 1 or (m.group(2) is not None and epoch < 1):
        return None
    return ManifestKey(sequence, epoch)


def head_of(keys: list[ManifestKey]) -> ManifestKey | None:
    """The newest version of a job among the manifests stored: highest (epoch, sequence)."""
    return max(keys, key=lambda k: k.rank, default=None)


def check_job_name(name: str) -> str:
    if not isinstance(name, str) or not _JOB_NAME.fullmatch(name):
        raise FormatError(
            f"job name {name!r} is not valid: use 1 to 64 of a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class Totals:
    objects: int
    stored_bytes: int


@dataclass(frozen=True)
class ManifestBody:
    job: str
    job_id: str
    sequence: int
    created: str
    previous: str | None
    sender: str
    recipients: tuple[Stanza, ...]
    key_check: bytes
    object_lists: tuple[ObjectRef, ...]
    catalog: tuple[ObjectRef, ...]
    totals: Totals
    changes: tuple[ObjectRef, ...] | None = None
    """The change lists of a follow job (SPEC 11.5), in order; None in any other manifest."""
    epoch: int = 0
    """The lease epoch of the agent that wrote it (SPEC 12.2); 0 for a send without a lease."""

    def to_json(self) -> dict[str, Any]:
        body = {
            "format": FORMAT_VERSION,
            "job": self.job,
            "job_id": self.job_id,
            "sequence": self.sequence,
            "created": self.created,
            "previous": self.previous,
            "sender": self.sender,
            "recipients": [s.to_json() for s in self.recipients],
            "key_check": base64.b64encode(self.key_check).decode(),
            "object_lists": [r.to_json() for r in self.object_lists],
            "catalog": [r.to_json() for r in self.catalog],
            "totals": {"objects": self.totals.objects, "stored_bytes": self.totals.stored_bytes},
        }
        if self.changes is not None:
            body["changes"] = [r.to_json() for r in self.changes]
        if self.epoch:
            body["epoch"] = self.epoch
        return body

    @property
    def key(self) -> ManifestKey:
        return ManifestKey(self.sequence, self.epoch)

    @classmethod
    def from_json(cls, value: Any) -> ManifestBody:
        if not isinstance(value, dict):
            raise FormatError("manifest body is not a JSON object")
        if value.get("format") != FORMAT_VERSION:
            raise UnsupportedVersionError(value.get("format"), "manifest")
        if set(value) - _OPTIONAL_FIELDS != _BODY_FIELDS:
            missing = _BODY_FIELDS - set(value)
            extra = set(value) - _BODY_FIELDS - _OPTIONAL_FIELDS
            raise FormatError(
                f"manifest body fields wrong: missing {sorted(missing)}, extra {sorted(extra)}"
            )
        epoch = value.get("epoch", 0)
        if "epoch" in value and (
            not isinstance(epoch, int) or isinstance(epoch, bool) or not 1 <= epoch <= _MAX_NUMBER
        ):
            raise FormatError("manifest epoch must be an integer of at least 1, or absent")
        job_id, seq, created, prev = (
            value["job_id"],
            value["sequence"],
            value["created"],
            value["previous"],
        )
        if not isinstance(job_id, str) or not re.fullmatch(r"[0-9a-f]{32}", job_id):
            raise FormatError("manifest job_id must be 32 lowercase hex digits")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise FormatError("manifest sequence must be a positive integer")
        if not canonical.is_utc_timestamp(created):
            raise FormatError("manifest created must be RFC 3339 UTC, e.g. 2026-11-22T21:00:00Z")
        if (prev is None) != (seq == 1) or (
            prev is not None
            and (not isinstance(prev, str) or not re.fullmatch(r"[0-9a-f]{64}", prev))
        ):
            raise FormatError("manifest previous must be null at sequence 1, else 64 hex digits")
        key_check = b64decode_strict(value["key_check"], "manifest key_check")
        if len(key_check) != KEY_CHECK_SIZE:
            raise FormatError("manifest key_check must be 16 bytes")
        for name in ("recipients", "object_lists", "catalog"):
            if not isinstance(value[name], list):
                raise FormatError(f"manifest {name} must be a list")
        if not value["recipients"]:
            raise FormatError("manifest has no recipients")
        if not value["catalog"]:
            raise FormatError("manifest names no catalog segment")
        changes = value.get("changes")
        if changes is not None and (not isinstance(changes, list) or not changes):
            raise FormatError("manifest changes must be a non-empty list of change lists")
        totals = value["totals"]
        if (
            not isinstance(totals, dict)
            or set(totals) != {"objects", "stored_bytes"}
            or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in totals.values()
            )
        ):
            raise FormatError(
                "manifest totals must be {objects, stored_bytes}, non-negative integers"
            )
        try:
            sender = parse_key_text(value["sender"]) if isinstance(value["sender"], str) else None
        except KeyFormatError as e:
            raise FormatError(f"manifest sender: {e.message}") from None
        if not isinstance(sender, SenderPublicKey):
            raise FormatError("manifest sender must be a sender public key (tds1…)")
        recipients = tuple(Stanza.from_json(s) for s in value["recipients"])
        named = [s.recipient.key for s in recipients]
        if len(set(named)) != len(named):
            raise FormatError("manifest has two stanzas for one recipient")
        return cls(
            job=check_job_name(value["job"]),
            job_id=job_id,
            sequence=seq,
            created=created,
            previous=prev,
            sender=value["sender"],
            recipients=recipients,
            key_check=key_check,
            object_lists=tuple(
                ObjectRef.from_json(r, "object list") for r in value["object_lists"]
            ),
            catalog=tuple(ObjectRef.from_json(r, "catalog segment") for r in value["catalog"]),
            totals=Totals(totals["objects"], totals["stored_bytes"]),
            changes=None
            if changes is None
            else tuple(ObjectRef.from_json(r, "change list") for r in changes),
            epoch=epoch,
        )


@dataclass(frozen=True)
class SignedManifest:
    """A manifest whose signature verified against the key named in it."""

    body: ManifestBody
    raw: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        """Hex SHA-256 of the manifest's bytes: what the next manifest's `previous` names."""
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def key(self) -> ManifestKey:
        return self.body.key


def sign(body: ManifestBody, sender: SenderSecretKey) -> bytes:
    """The manifest's stored bytes. The body's sender MUST be this key's public key."""
    if body.sender != sender.public().to_text():
        raise ValueError("manifest body names another sender")
    return signed.sign_text(MANIFEST_FIRST_LINE, body.to_json(), sender)


def parse(data: bytes) -> SignedManifest:
    """Parse a manifest and check its signature against the sender it names (SPEC 13.1 steps 1
    to 5). Whether that sender is the one expected is a separate question: see ``verify``."""
    body = signed.open_text(
        data,
        first_line=MANIFEST_FIRST_LINE,
        what="manifest",
        parse_body=ManifestBody.from_json,
        sender_of=lambda b: b.sender,
    )
    return SignedManifest(body, data)


def verify(data: bytes, expected: SenderPublicKey) -> SignedManifest:
    """Parse, check the signature, and check that the signer is ``expected``."""
    manifest = parse(data)
    signed.check_signer(manifest.body.sender, expected, "manifest")
    return manifest


def check_succession(previous: SignedManifest | None, current: SignedManifest) -> None:
    """``current`` must follow ``previous`` directly: same job, next sequence, hash-linked."""
    body = current.body
    if previous is None:
        if body.sequence != 1:
            raise RollbackError(f"manifest {body.sequence} of job {body.job} has no predecessor")
        return
    if body.job_id != previous.body.job_id:
        raise RollbackError(
            f"manifest {body.sequence} belongs to another job than {previous.body.sequence}"
        )
    if body.key_check != previous.body.key_check:  # K_job never changes within a job (SPEC 14)
        raise RollbackError(
            f"manifest {body.sequence} of job {body.job} has another key_check than manifest "
            f"{previous.body.sequence}: another job key"
        )
    if body.sequence != previous.body.sequence + 1 or body.previous != previous.digest:
        raise RollbackError(
            f"manifest {body.sequence} of job {body.job} does not follow "
            f"manifest {previous.body.sequence}"
        )
    if body.epoch < previous.body.epoch:  # SPEC 12.2: a stale holder chained onto its successor
        raise RollbackError(
            f"manifest {body.key} of job {body.job} follows manifest {previous.key}, of a later "
            "epoch: it was written by an agent that had lost the job"
        )


def check_not_rolled_back(
    current: SignedManifest, newest_seen: int | None, seen_epoch: int = 0
) -> None:
    """Refuse a manifest older than the newest this reader has already seen for the job: of a
    lower (epoch, sequence), the order of heads (SPEC 12.2; an unleased job has epoch 0)."""
    if newest_seen is not None and current.key.rank < (seen_epoch, newest_seen):
        seen = ManifestKey(newest_seen, seen_epoch)
        raise RollbackError(
            f"job {current.body.job} is at manifest {current.key} but manifest {seen} was seen "
            "before: the store was rolled back"
        )


def check_stored_as(current: SignedManifest, job: str, sequence: int, epoch: int = 0) -> None:
    """The manifest read from ``jobs/<job>/manifests/<sequence>`` (``…-<epoch>`` under a lease,
    SPEC 12.2) must say it is that one (SPEC 13.1 step 7): a valid manifest copied under
    another job, number or epoch is refused."""
    body = current.body
    stored = ManifestKey(sequence, epoch)
    if body.job != job:
        raise IntegrityError(f"manifest {stored} stored under job {job} is of job {body.job}")
    if body.key != stored:
        raise IntegrityError(f"manifest stored as {stored} of job {job} says it is {body.key}")


def check_totals(body: ManifestBody, packs: list[ObjectRef]) -> None:
    """The packs the object lists name must number and sum to the body's totals (SPEC 14)."""
    count, size = len(packs), sum(p.size for p in packs)
    if (count, size) != (body.totals.objects, body.totals.stored_bytes):
        raise IntegrityError(
            f"manifest {body.sequence} totals say {body.totals.objects} packs of "
            f"{body.totals.stored_bytes} bytes; its object lists name {count} of {size}"
        )


def manifest_name(sequence: int, epoch: int = 0) -> str:
    """``<sequence, 20 digits>``, and ``-<epoch, 20 digits>`` when the epoch is not 0."""
    name = f"{sequence:0{MANIFEST_SEQUENCE_DIGITS}d}"
    return name if not epoch else f"{name}-{epoch:0{MANIFEST_SEQUENCE_DIGITS}d}"
