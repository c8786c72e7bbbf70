"""A report's own hash and optional Ed25519 signature, and checking both on a saved report.

protocol/REPORT.md "Hash and signature" is the definition; in short:

    report_sha256 = hex SHA-256 of canonical JSON (protocol/DESIGN-BRIEF.md "Notation") of the
                    report object with its top-level "report_sha256" and "signature" removed
    signature     = {"key": "tds1…", "ed25519": base64 of Ed25519(secret key,
                     "transferd-verify-report v1\\n" || report_sha256 as 64 ASCII hex digits)}

The hash lets a report be cited ("verify report sha256 3fa9…") and any later change to it be
seen; the signature binds it to the auditor who ran the verify. Signing the hash with a prefix
rather than the raw document keeps the signed message short and never valid as anything else
(a manifest's signed lines start with "transferd-manifest").
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from transferd.core import canonical
from transferd.core.jobkey import b64decode_strict
from transferd.core.keys import SenderPublicKey, SenderSecretKey, parse_key_text
from transferd.errors import FormatError, IntegrityError, KeyFormatError, SignatureError
from transferd.report.model import COPY_REPORT_TYPE, REPORT_TYPE, SCHEMA_VERSION

SIGNED_PREFIX = b"transferd-verify-report v1\n"
UNHASHED_FIELDS = ("report_sha256", "signature")


def fingerprint(key: SenderPublicKey) -> str:
    """``SHA256:`` and the unpadded base64 of the SHA-256 of the raw 32-byte key (OpenSSH's
    form), short enough to read aloud over the phone when comparing keys."""
    digest = hashlib.sha256(key.key).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def report_digest(document: dict[str, Any]) -> str:
    body = {k: v for k, v in document.items() if k not in UNHASHED_FIELDS}
    try:
        return hashlib.sha256(canonical.dumps(body)).hexdigest()
    except TypeError:
        raise FormatError(
            "report holds a non-integer number, which canonical JSON refuses"
        ) from None


def seal(document: dict[str, Any], signer: SenderSecretKey | None) -> dict[str, Any]:
    """The document with its hash, and its signature when ``signer`` is given."""
    digest = report_digest(document)
    sealed = {**document, "report_sha256": digest}
    if signer is not None:
        signature = signer.sign(SIGNED_PREFIX + digest.encode())
        sealed["signature"] = {
            "key": signer.public().to_text(),
            "ed25519": base64.b64encode(signature).decode(),
        }
    return sealed


def dumps(document: dict[str, Any]) -> str:
    """The saved form: indented for people; the hash does not depend on it."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class Checked:
    digest: str
    signer: str | None
    verdict: str
    summary: str


def load(text: str, what: str) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"duplicate key {key!r}")
            out[key] = value
        return out

    try:
        document = json.loads(text, object_pairs_hook=no_duplicates)
    except ValueError as e:
        raise FormatError(f"{what} is not a JSON report: {e}") from None
    if not isinstance(document, dict) or document.get("type") not in (
        REPORT_TYPE,
        COPY_REPORT_TYPE,
    ):
        raise FormatError(f"{what} is not a transferd verify report")
    if document.get("schema_version") != SCHEMA_VERSION:
        raise FormatError(
            f"{what} has report schema version {document.get('schema_version')!r}; "
            f"this build reads version {SCHEMA_VERSION}"
        )
    return document


def check(document: dict[str, Any], what: str, signer: SenderPublicKey | None) -> Checked:
    """Check a loaded report's hash and signature; ``signer`` requires a signature by that key."""
    claimed = document.get("report_sha256")
    if not isinstance(claimed, str):
        raise FormatError(f"{what} has no report_sha256")
    digest = report_digest(document)
    if digest != claimed:
        raise IntegrityError(
            f"{what} was changed after it was written: its content hashes to {digest}, "
            f"it claims {claimed}"
        )
    signed_by = _check_signature(document.get("signature"), digest, what)
    if signer is not None:
        if signed_by is None:
            raise SignatureError(f"{what} is not signed; a signature by {signer} was expected")
        if signed_by != signer.to_text():
            raise SignatureError(f"{what} is signed by {signed_by}, expected {signer}")
    return Checked(
        digest, signed_by, str(document.get("verdict")), str(document.get("summary", ""))
    )


def _check_signature(signature: Any, digest: str, what: str) -> str | None:
    if signature is None:
        return None
    if not isinstance(signature, dict) or set(signature) != {"key", "ed25519"}:
        raise FormatError(f"{what}: signature must have exactly key and ed25519")
    try:
        key = parse_key_text(str(signature["key"]))
    except KeyFormatError as e:
        raise FormatError(f"{what}: signature key: {e.message}") from None
    if not isinstance(key, SenderPublicKey):
        raise FormatError(f"{what}: signature key must be a sender public key (tds1…)")
    raw = b64decode_strict(signature["ed25519"], f"{what} signature")
    if len(raw) != 64 or not key.verify(SIGNED_PREFIX + digest.encode(), raw):
        raise SignatureError(f"{what}: signature by {key} is invalid")
    return key.to_text()
