"""Recipient and sender keys, their bech32 text forms and the key file format.

A *recipient* is who can decrypt a copy; a *sender* (Ed25519) is who signed it and whom a
storage host accepts uploads from. A recipient is of one of two types (SPEC 3.1):

- hybrid post-quantum, the default: ML-KEM-768 combined with X25519 (X-Wing, HPKE KEM
  ``MLKEM768-X25519``, as age's ``mlkem768x25519`` recipients). Public key ``tdrpq1…`` (1216
  bytes), identity ``TD-SECRET-RECIPIENT-PQ-1…`` (a 32-byte seed);
- classic X25519: public key ``tdr1…``, identity ``TD-SECRET-RECIPIENT-1…``; a quantum computer
  would break it, so it is kept for recipients that cannot move yet.

Sender keys read ``tds1…`` / ``TD-SECRET-SENDER-1…``. Secret keys are upper case and say
``SECRET`` so that a secret pasted where a public key belongs is recognised, named, and refused.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import nacl.bindings
import nacl.exceptions
import nacl.signing
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from transferd.core import bech32
from transferd.core.constants import (
    HYBRID_PUBLIC_SIZE,
    HYBRID_SEED_EXPANSION,
    KEY_SIZE,
    MLKEM768_PUBLIC_SIZE,
)
from transferd.errors import KeyFormatError

HRP_RECIPIENT = "tdr"
HRP_RECIPIENT_SECRET = "td-secret-recipient-"  # noqa: S105 - a prefix, not a secret
HRP_RECIPIENT_PQ = "tdrpq"
HRP_RECIPIENT_PQ_SECRET = "td-secret-recipient-pq-"  # noqa: S105 - a prefix, not a secret
HRP_SENDER = "tds"
HRP_SENDER_SECRET = "td-secret-sender-"  # noqa: S105 - a prefix, not a secret

FINGERPRINT_SIZE = 8
"""Bytes of SHA-256 shown as a key's fingerprint (16 hex digits): something a person can compare
where a 1958-character key cannot be read (SPEC 3.1)."""


class RecipientType(enum.Enum):
    """A recipient's algorithm; the value is its stanza ``type`` (SPEC 5)."""

    X25519 = "X25519"
    MLKEM768X25519 = "mlkem768x25519"

    @property
    def post_quantum(self) -> bool:
        return self is RecipientType.MLKEM768X25519


X25519 = RecipientType.X25519
HYBRID = RecipientType.MLKEM768X25519

_PUBLIC_SIZE = {X25519: KEY_SIZE, HYBRID: HYBRID_PUBLIC_SIZE}
_PUBLIC_HRP = {X25519: HRP_RECIPIENT, HYBRID: HRP_RECIPIENT_PQ}
_SECRET_HRP = {X25519: HRP_RECIPIENT_SECRET, HYBRID: HRP_RECIPIENT_PQ_SECRET}

_KIND_BY_HRP = {
    HRP_RECIPIENT: "a recipient public key",
    HRP_RECIPIENT_SECRET: "a recipient identity (secret)",
    HRP_RECIPIENT_PQ: "a hybrid recipient public key",
    HRP_RECIPIENT_PQ_SECRET: "a hybrid recipient identity (secret)",
    HRP_SENDER: "a sender public key",
    HRP_SENDER_SECRET: "a sender secret key",
}
_SIZE_BY_HRP = {HRP_RECIPIENT_PQ: HYBRID_PUBLIC_SIZE}
"""Bytes a key of each prefix holds: 32 unless listed (SPEC 3.2 rule 7)."""


def fingerprint(public: bytes) -> str:
    """The first FINGERPRINT_SIZE bytes of SHA-256 of a public key, in hex (informative)."""
    return hashlib.sha256(public).hexdigest()[: 2 * FINGERPRINT_SIZE]


@dataclass(frozen=True)
class RecipientKey:
    """A recipient public key: a copy encrypted to it can be read by its identity's holder.

    X25519: the 32-byte u-coordinate. Hybrid: the 1184-byte ML-KEM-768 encapsulation key, then
    the 32-byte X25519 key; it is checked (FIPS 203's modulus check) when built."""

    key: bytes
    type: RecipientType = X25519

    def __post_init__(self) -> None:
        _check_size(self.key, "recipient key", _PUBLIC_SIZE[self.type])
        if self.type is HYBRID:
            self.hpke_key  # noqa: B018 - parses it now: a bad key fails here, not at wrap

    @cached_property
    def hpke_key(self) -> hpke.MLKEM768X25519PublicKey:
        """The hybrid key as pyca's HPKE takes it (hybrid recipients only)."""
        if self.type is not HYBRID:
            raise ValueError("an X25519 recipient has no HPKE key")
        try:
            encaps = mlkem.MLKEM768PublicKey.from_public_bytes(self.key[:MLKEM768_PUBLIC_SIZE])
        except ValueError:  # pyca's message ("… is 1184 bytes long") is misleading here
            raise KeyFormatError(
                "hybrid recipient key is not a valid ML-KEM-768 key (its modulus check fails)",
                hint="copy the key again from its source",
            ) from None
        share = x25519.X25519PublicKey.from_public_bytes(self.key[MLKEM768_PUBLIC_SIZE:])
        return hpke.MLKEM768X25519PublicKey(encaps, share)

    @property
    def post_quantum(self) -> bool:
        return self.type.post_quantum

    def to_text(self) -> str:
        return bech32.encode(_PUBLIC_HRP[self.type], self.key)

    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def display(self) -> str:
        """The key for messages: whole when short; a hybrid key's ends and fingerprint."""
        text = self.to_text()
        if self.type is X25519:
            return text
        return f"{text[:14]}…{text[-6:]} (fingerprint {self.fingerprint()})"

    def __str__(self) -> str:
        return self.to_text()


@dataclass(frozen=True)
class RecipientIdentity:
    """A recipient's secret: an X25519 scalar, or a hybrid identity's 32-byte seed, expanded as
    X-Wing expands it (SPEC 3.1). ``repr`` never shows it."""

    secret: bytes = field(repr=False)
    type: RecipientType = X25519

    def __post_init__(self) -> None:
        _check_size(self.secret, "recipient identity", KEY_SIZE)

    @classmethod
    def from_bytes(cls, secret32: bytes) -> RecipientIdentity:
        return cls(bytes(secret32))

    @classmethod
    def hybrid(cls, seed32: bytes) -> RecipientIdentity:
        """A hybrid identity from its 32-byte seed."""
        return cls(bytes(seed32), HYBRID)

    @property
    def post_quantum(self) -> bool:
        return self.type.post_quantum

    @cached_property
    def _parts(self) -> tuple[mlkem.MLKEM768PrivateKey, x25519.X25519PrivateKey]:
        """The hybrid seed expanded (SPEC 3.1): computed once, since the ML-KEM key generation
        is most of the cost of an unwrap."""
        if self.type is not HYBRID:
            raise ValueError("an X25519 identity has no hybrid parts")
        expanded = hashlib.shake_256(self.secret).digest(HYBRID_SEED_EXPANSION)
        return (
            mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64]),
            x25519.X25519PrivateKey.from_private_bytes(expanded[64:]),
        )

    @cached_property
    def hpke_key(self) -> hpke.MLKEM768X25519PrivateKey:
        """The hybrid private key as pyca's HPKE takes it (hybrid identities only)."""
        return hpke.MLKEM768X25519PrivateKey(*self._parts)

    def public(self) -> RecipientKey:
        if self.type is X25519:
            return RecipientKey(nacl.bindings.crypto_scalarmult_base(self.secret))
        encaps, share = self._parts
        return RecipientKey(
            encaps.public_key().public_bytes_raw() + share.public_key().public_bytes_raw(),
            HYBRID,
        )

    def to_text(self) -> str:
        return bech32.encode(_SECRET_HRP[self.type], self.secret).upper()


@dataclass(frozen=True)
class SenderPublicKey:
    """An Ed25519 verify key: manifests and upload requests are checked against it."""

    key: bytes

    def __post_init__(self) -> None:
        _check_size(self.key, "sender key", KEY_SIZE)

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
        _check_size(self.seed, "sender key", KEY_SIZE)

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
    """Parse any key text form, with the checks of SPEC 3.2 in their order; raises
    KeyFormatError naming what is wrong."""
    text = text.strip()
    if not text:
        raise KeyFormatError("empty key")
    hrp, data = bech32.decode(text)  # rules 1 to 4
    if hrp not in _KIND_BY_HRP:
        raise KeyFormatError(f"key {text[:12]}… is not a transferd key (prefix {hrp!r})")
    is_secret = hrp.startswith("td-secret-")
    if is_secret and text != text.upper():
        raise KeyFormatError(f"{_KIND_BY_HRP[hrp]} must be written in upper case")
    if not is_secret and text != text.lower():
        raise KeyFormatError(f"{_KIND_BY_HRP[hrp]} must be written in lower case")
    expected = _SIZE_BY_HRP.get(hrp, KEY_SIZE)
    if len(data) != expected:
        raise KeyFormatError(
            f"key {text[:12]}… has {len(data)} bytes, expected {expected}: "
            "it is truncated or padded"
        )
    if hrp == HRP_RECIPIENT:
        return RecipientKey(data)
    if hrp == HRP_RECIPIENT_PQ:
        return RecipientKey(data, HYBRID)  # rule 7a, the modulus check, is in its constructor
    if hrp == HRP_RECIPIENT_SECRET:
        return RecipientIdentity(data)
    if hrp == HRP_RECIPIENT_PQ_SECRET:
        return RecipientIdentity(data, HYBRID)
    if hrp == HRP_SENDER:
        return SenderPublicKey(data)
    return SenderSecretKey(data)


def parse_recipient(text: str) -> RecipientKey:
    """A recipient public key; an identity is accepted and reduced to its public key."""
    key = parse_key_text(text)
    if isinstance(key, RecipientIdentity):
        return key.public()
    if not isinstance(key, RecipientKey):
        raise KeyFormatError(
            f"this is {describe(key)}, a recipient key (tdrpq1… or tdr1…) was expected"
        )
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
        return _KIND_BY_HRP[_PUBLIC_HRP[key.type]]
    if isinstance(key, RecipientIdentity):
        return _KIND_BY_HRP[_SECRET_HRP[key.type]]
    if isinstance(key, SenderPublicKey):
        return _KIND_BY_HRP[HRP_SENDER]
    return _KIND_BY_HRP[HRP_SENDER_SECRET]


def render_key_file(secret: SecretKey, created: str) -> str:
    """The text of a key file: comment lines (the public key, and a hybrid key's fingerprint),
    then the secret key line."""
    public = secret.public()
    lines = [f"# created: {created}", f"# public key: {public.to_text()}"]
    if isinstance(public, RecipientKey) and public.post_quantum:
        lines.append(f"# fingerprint: {public.fingerprint()}")
    return "\n".join([*lines, secret.to_text()]) + "\n"


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


def _check_size(value: bytes, what: str, size: int) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        raise KeyFormatError(f"{what} must be {size} bytes")
