"""The signed manifest: the root of one version of a job, checkable with the sender's public key.

    transferd-manifest v1\\n
    <canonical JSON body>\\n
    sig <tds1… sender key> <base64 Ed25519 signature of the two lines above>\\n

The body names the job, its sequence number and the hash of the previous manifest (so the history
of a job is a chain and an older manifest cannot pass as the newest), the recipient stanzas, and
the object-list and catalog segments by SHA-256 (so every stored byte hangs from this signature).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from transferd.core import canonical, signed
from transferd.core.constants import (
    FORMAT_VERSION,
    JOB_NAME_PATTERN,
    KEY_CHECK_SIZE,
    MANIFEST_FIRST_LINE,
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
        return body

    @classmethod
    def from_json(cls, value: Any) -> ManifestBody:
        if not isinstance(value, dict):
            raise FormatError("manifest body is not a JSON object")
        if value.get("format") != FORMAT_VERSION:
            raise UnsupportedVersionError(value.get("format"), "manifest")
        if set(value) - {"changes"} != _BODY_FIELDS:
            missing, extra = _BODY_FIELDS - set(value), set(value) - _BODY_FIELDS - {"changes"}
            raise FormatError(
                f"manifest body fields wrong: missing {sorted(missing)}, extra {sorted(extra)}"
            )
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


def check_not_rolled_back(current: SignedManifest, newest_seen: int | None) -> None:
    """Refuse a manifest older than the newest this reader has already seen for the job."""
    if newest_seen is not None and current.body.sequence < newest_seen:
        raise RollbackError(
            f"job {current.body.job} is at manifest {current.body.sequence} but manifest "
            f"{newest_seen} was seen before: the store was rolled back"
        )


def check_stored_as(current: SignedManifest, job: str, sequence: int) -> None:
    """The manifest read from ``jobs/<job>/manifests/<sequence>`` must say it is that one
    (SPEC 13.1 step 7): a valid manifest copied under another job or number is refused."""
    body = current.body
    if body.job != job:
        raise IntegrityError(f"manifest {sequence} stored under job {job} is of job {body.job}")
    if body.sequence != sequence:
        raise IntegrityError(
            f"manifest stored as {sequence} of job {job} says it is {body.sequence}"
        )


def check_totals(body: ManifestBody, packs: list[ObjectRef]) -> None:
    """The packs the object lists name must number and sum to the body's totals (SPEC 14)."""
    count, size = len(packs), sum(p.size for p in packs)
    if (count, size) != (body.totals.objects, body.totals.stored_bytes):
        raise IntegrityError(
            f"manifest {body.sequence} totals say {body.totals.objects} packs of "
            f"{body.totals.stored_bytes} bytes; its object lists name {count} of {size}"
        )


def manifest_name(sequence: int) -> str:
    return f"{sequence:020d}"
