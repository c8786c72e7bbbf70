"""Recipient and sender keys, their bech32 text forms and the key file format.

A *recipient* (X25519) is who can decrypt a copy; a *sender* (Ed25519) is who signed it and whom
a storage host accepts uploads from. Public keys read ``tdr1…`` / ``tds1…``; secret keys read
``TD-SECRET-RECIPIENT-1…`` / ``TD-SECRET-SENDER-1…`` so that a secret pasted where a public key
belongs is recognised, named, and refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nacl.bindings
import nacl.exceptions
import nacl.signing

from transferd.core import bech32
from transferd.core.constants import KEY_SIZE
from transferd.errors import KeyFormatError

HRP_RECIPIENT = "tdr"
HRP_RECIPIENT_SECRET = "td-secret-recipient-"  # noqa: S105 - a prefix, not a secret
HRP_SENDER = "tds"
HRP_SENDER_SECRET = "td-secret-sender-"  # noqa: S105 - a prefix, not a secret

_KIND_BY_HRP = {
    HRP_RECIPIENT: "a recipient public key",
    HRP_RECIPIENT_SECRET: "a recipient identity (secret)",
    HRP_SENDER: "a sender public key",
    HRP_SENDER_SECRET: "a sender secret key",
}


@dataclass(frozen=True)
class RecipientKey:
    """An X25519 public key: a copy encrypted to it can be read by its identity's holder."""

    key: bytes

    def __post_init__(self) -> None:
        _check_size(self.key, "recipient key")

    def to_text(self) -> str:
        return bech32.encode(HRP_RECIPIENT, self.key)

    def __str__(self) -> str:
        return self.to_text()


@dataclass(frozen=True)
class RecipientIdentity:
    """An X25519 secret scalar. ``repr`` never shows it."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_size(self.secret, "recipient identity")

    @classmethod
    def from_bytes(cls, secret32: bytes) -> RecipientIdentity:
        return cls(bytes(secret32))

    def public(self) -> RecipientKey:
        return RecipientKey(nacl.bindings.crypto_scalarmult_base(self.secret))

    def to_text(self) -> str:
        return bech32.encode(HRP_RECIPIENT_SECRET, self.secret).upper()


@dataclass(frozen=True)
class SenderPublicKey:
    """An Ed25519 verify key: manifests and upload requests are checked against it."""

    key: bytes

    def __post_init__(self) -> None:
        _check_size(self.key, "sender key")

    def to_text(self) -> str:
        return bech32.encode(HRP_SENDER, self.key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` is a valid Ed25519 signature of ``message`` by this key."""
        try:
            nacl.signing.VerifyKey(self.key).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            return False
        return True

    def __str__(self) -> str:
        return self.to_text()


@dataclass(frozen=True)
class SenderSecretKey:
    """An Ed25519 seed. ``repr`` never shows it."""

    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_size(self.seed, "sender key")

    @classmethod
    def from_bytes(cls, seed32: bytes) -> SenderSecretKey:
        return cls(bytes(seed32))

    def public(self) -> SenderPublicKey:
        return SenderPublicKey(bytes(nacl.signing.SigningKey(self.seed).verify_key))

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (deterministic, RFC 8032)."""
        return bytes(nacl.signing.SigningKey(self.seed).sign(message).signature)

    def to_text(self) -> str:
        return bech32.encode(HRP_SENDER_SECRET, self.seed).upper()


AnyKey = RecipientKey | RecipientIdentity | SenderPublicKey | SenderSecretKey
SecretKey = RecipientIdentity | SenderSecretKey


def parse_key_text(text: str) -> AnyKey:
    """Parse any of the four key text forms; raises KeyFormatError naming what is wrong."""
    text = text.strip()
    if not text:
        raise KeyFormatError("empty key")
    hrp, data = bech32.decode(text)
    if hrp not in _KIND_BY_HRP:
        raise KeyFormatError(f"key {text[:12]}… is not a transferd key (prefix {hrp!r})")
    is_secret = hrp in (HRP_RECIPIENT_SECRET, HRP_SENDER_SECRET)
    if is_secret and text != text.upper():
        raise KeyFormatError(f"{_KIND_BY_HRP[hrp]} must be written in upper case")
    if not is_secret and text != text.lower():
        raise KeyFormatError(f"{_KIND_BY_HRP[hrp]} must be written in lower case")
    if len(data) != KEY_SIZE:
        raise KeyFormatError(
            f"key {text[:12]}… has {len(data)} bytes, expected {KEY_SIZE}: "
            "it is truncated or padded"
        )
    if hrp == HRP_RECIPIENT:
        return RecipientKey(data)
    if hrp == HRP_RECIPIENT_SECRET:
        return RecipientIdentity(data)
    if hrp == HRP_SENDER:
        return SenderPublicKey(data)
    return SenderSecretKey(data)


def parse_recipient(text: str) -> RecipientKey:
    """A recipient public key; an identity is accepted and reduced to its public key."""
    key = parse_key_text(text)
    if isinstance(key, RecipientIdentity):
        return key.public()
    if not isinstance(key, RecipientKey):
        raise KeyFormatError(f"this is {describe(key)}, a recipient key (tdr1…) was expected")
    return key


def parse_sender_public(text: str) -> SenderPublicKey:
    key = parse_key_text(text)
    if isinstance(key, SenderSecretKey):
        return key.public()
    if not isinstance(key, SenderPublicKey):
        raise KeyFormatError(f"this is {describe(key)}, a sender public key (tds1…) was expected")
    return key


def describe(key: AnyKey) -> str:
    """What kind of key this is, in words, for error messages."""
    if isinstance(key, RecipientKey):
        return _KIND_BY_HRP[HRP_RECIPIENT]
    if isinstance(key, RecipientIdentity):
        return _KIND_BY_HRP[HRP_RECIPIENT_SECRET]
    if isinstance(key, SenderPublicKey):
        return _KIND_BY_HRP[HRP_SENDER]
    return _KIND_BY_HRP[HRP_SENDER_SECRET]


def render_key_file(secret: SecretKey, created: str) -> str:
    """The text of a key file: two comment lines, then the secret key line."""
    return f"# created: {created}\n# public key: {secret.public().to_text()}\n{secret.to_text()}\n"


def parse_key_file(text: str) -> SecretKey:
    """The secret key a key file holds. Comment (#) and blank lines are ignored."""
    lines = [ln.strip() for ln in text.splitlines()]
    keys = [ln for ln in lines if ln and not ln.startswith("#")]
    if not keys:
        raise KeyFormatError("key file holds no key")
    if len(keys) > 1:
        raise KeyFormatError(f"key file holds {len(keys)} keys, expected exactly one")
    key = parse_key_text(keys[0])
    if not isinstance(key, RecipientIdentity | SenderSecretKey):
        raise KeyFormatError(f"key file holds {describe(key)}, a secret key was expected")
    return key


def _check_size(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != KEY_SIZE:
        raise KeyFormatError(f"{what} must be {KEY_SIZE} bytes")
