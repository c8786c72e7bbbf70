"""The per-job data key, the subkeys derived from it, and its wrapping to each recipient.

One random 32-byte key per job encrypts everything the job stores. It is wrapped once per
recipient (the data owner, an escrow key, …) in a *stanza* of the manifest, so adding or dropping a
recipient rewrites one small manifest and no chunk (SPEC "Recipient stanzas", "Rekey").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field

import nacl.bindings
import nacl.exceptions

from transferd.core.constants import (
    KEY_CHECK_SIZE,
    KEY_SIZE,
    LABEL_CATALOG_SEAL,
    LABEL_CHUNK_ID,
    LABEL_CHUNK_SEAL,
    LABEL_KEY_CHECK,
    LABEL_PACK_HEADER_SEAL,
    LABEL_X25519_WRAP,
    NONCE_SIZE,
)
from transferd.core.keys import RecipientIdentity, RecipientKey, parse_key_text
from transferd.errors import AuthenticationError, FormatError, KeyFormatError, NotARecipientError

STANZA_TYPE_X25519 = "X25519"
_WRAPPED_SIZE = KEY_SIZE + 16
_ZERO_NONCE = bytes(NONCE_SIZE)


def kdf(key: bytes, label: bytes) -> bytes:
    """KDF(K, label) = BLAKE2b-256 keyed with K over label."""
    return hashlib.blake2b(label, key=key, digest_size=32).digest()


@dataclass(frozen=True)
class JobKey:
    """K_job and its subkeys. ``repr`` shows none of them."""

    key: bytes = field(repr=False)
    chunk_id_key: bytes = field(init=False, repr=False)
    chunk_key: bytes = field(init=False, repr=False)
    catalog_key: bytes = field(init=False, repr=False)
    pack_header_key: bytes = field(init=False, repr=False)
    key_check: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) != KEY_SIZE:
            raise ValueError(f"a job key is {KEY_SIZE} bytes")
        set_ = object.__setattr__
        set_(self, "chunk_id_key", kdf(self.key, LABEL_CHUNK_ID))
        set_(self, "chunk_key", kdf(self.key, LABEL_CHUNK_SEAL))
        set_(self, "catalog_key", kdf(self.key, LABEL_CATALOG_SEAL))
        set_(self, "pack_header_key", kdf(self.key, LABEL_PACK_HEADER_SEAL))
        set_(self, "key_check", kdf(self.key, LABEL_KEY_CHECK)[:KEY_CHECK_SIZE])


@dataclass(frozen=True)
class Stanza:
    """K_job wrapped to one recipient, named by its public key so auditors see who can decrypt."""

    recipient: RecipientKey
    epk: bytes
    wrapped: bytes

    def to_json(self) -> dict[str, str]:
        return {
            "type": STANZA_TYPE_X25519,
            "recipient": self.recipient.to_text(),
            "epk": base64.b64encode(self.epk).decode(),
            "wrapped": base64.b64encode(self.wrapped).decode(),
        }

    @classmethod
    def from_json(cls, value: object) -> Stanza:
        if not isinstance(value, dict) or set(value) != {"type", "recipient", "epk", "wrapped"}:
            raise FormatError("recipient stanza must have exactly type, recipient, epk and wrapped")
        if value["type"] != STANZA_TYPE_X25519:
            raise FormatError(f"unknown recipient stanza type {value['type']!r}")
        try:
            recipient = parse_recipient_text(value["recipient"])
        except KeyFormatError as e:
            raise FormatError(f"recipient stanza: {e.message}") from None
        epk = b64decode_strict(value["epk"], "stanza epk")
        wrapped = b64decode_strict(value["wrapped"], "stanza wrapped key")
        if len(epk) != KEY_SIZE or len(wrapped) != _WRAPPED_SIZE:
            raise FormatError("recipient stanza has a field of the wrong length")
        return cls(recipient, epk, wrapped)


def _wrap_key(shared: bytes, epk: bytes, recipient: bytes) -> bytes:
    return hashlib.blake2b(LABEL_X25519_WRAP + epk + recipient, key=shared, digest_size=32).digest()


def wrap(job_key: JobKey, recipient: RecipientKey, ephemeral_secret: bytes) -> Stanza:
    """Wrap K_job to ``recipient`` with the given 32 random bytes as the ephemeral secret."""
    epk = nacl.bindings.crypto_scalarmult_base(ephemeral_secret)
    shared = nacl.bindings.crypto_scalarmult(ephemeral_secret, recipient.key)
    if not any(shared):
        raise FormatError("recipient key is a low-order point")
    wrapped = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        job_key.key, LABEL_X25519_WRAP, _ZERO_NONCE, _wrap_key(shared, epk, recipient.key)
    )
    return Stanza(recipient, epk, wrapped)


def unwrap(stanzas: list[Stanza], identity: RecipientIdentity, key_check: bytes) -> JobKey:
    """K_job from the first stanza ``identity`` opens, checked against the manifest's key_check.

    Only stanzas naming this identity's public key are tried. Raises NotARecipientError when none
    does, AuthenticationError when one does but fails to open (altered) or yields a key that fails
    key_check (a sender that gave recipients different keys, or tampering).
    """
    me = identity.public()
    recipient = me.key
    mine = [s for s in stanzas if hmac.compare_digest(s.recipient.key, recipient)]
    if not mine:
        raise NotARecipientError(me.to_text(), [s.recipient.to_text() for s in stanzas])
    for stanza in mine:
        try:
            shared = nacl.bindings.crypto_scalarmult(identity.secret, stanza.epk)
        except nacl.exceptions.RuntimeError:
            continue  # a low-order epk: this stanza is not for us
        if not any(shared):
            continue
        try:
            key = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                stanza.wrapped,
                LABEL_X25519_WRAP,
                _ZERO_NONCE,
                _wrap_key(shared, stanza.epk, recipient),
            )
        except nacl.exceptions.CryptoError:
            raise AuthenticationError(
                f"the key wrapped to {me.to_text()} failed authentication: the manifest was altered"
            ) from None
        job_key = JobKey(key)
        if not hmac.compare_digest(job_key.key_check, key_check):
            raise AuthenticationError("the job key unwrapped for this identity fails the key check")
        return job_key
    raise AuthenticationError(f"no stanza for {me.to_text()} could be opened")


def b64decode_strict(value: object, what: str) -> bytes:
    """Standard base64 with padding, rejecting anything non-canonical."""
    if not isinstance(value, str):
        raise FormatError(f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise FormatError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode() != value:
        raise FormatError(f"{what} is not canonical base64")
    return raw


def parse_recipient_text(value: object) -> RecipientKey:
    if not isinstance(value, str):
        raise KeyFormatError("a recipient must be a tdr1… key")
    key = parse_key_text(value)
    if not isinstance(key, RecipientKey):
        raise KeyFormatError("a stanza's recipient must be a public recipient key (tdr1…)")
    return key
