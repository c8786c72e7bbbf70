"""The per-job data key, the subkeys derived from it, and its wrapping to each recipient.

One random 32-byte key per job encrypts everything the job stores. It is wrapped once per
recipient (the data owner, an escrow key, …) in a *stanza* of the manifest, so adding or dropping a
recipient rewrites one small manifest and no chunk (SPEC "Recipient stanzas", "Rekey").

A stanza is of its recipient's type: ``X25519`` (an ephemeral X25519 key, BLAKE2b, XChaCha20-
Poly1305; SPEC 5.1) or ``mlkem768x25519`` (HPKE base mode with the X-Wing KEM, HKDF-SHA256 and
ChaCha20-Poly1305; SPEC 5.2). The X25519 ephemeral secret is passed in, so those stanzas are
reproducible from injected inputs. A hybrid stanza's encapsulation randomness is drawn by OpenSSL
inside pyca's HPKE, the one place the core does not take its randomness from the caller: pyca has
no way to inject it (the vectors pin hybrid stanzas with a generator of their own, SPEC 24).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

import nacl.bindings
import nacl.exceptions
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke

from transferd.core.constants import (
    HYBRID_ENC_SIZE,
    KEY_CHECK_SIZE,
    KEY_SIZE,
    LABEL_CATALOG_SEAL,
    LABEL_CHUNK_ID,
    LABEL_CHUNK_SEAL,
    LABEL_KEY_CHECK,
    LABEL_MLKEM768X25519_WRAP,
    LABEL_PACK_HEADER_SEAL,
    LABEL_X25519_WRAP,
    NONCE_SIZE,
    WRAPPED_SIZE,
)
from transferd.core.keys import (
    HYBRID,
    X25519,
    RecipientIdentity,
    RecipientKey,
    RecipientType,
    parse_key_text,
)
from transferd.errors import (
    AuthenticationError,
    ConfigError,
    FormatError,
    KeyFormatError,
    NotARecipientError,
)

STANZA_TYPE_X25519 = X25519.value
STANZA_TYPE_MLKEM768X25519 = HYBRID.value
_ZERO_NONCE = bytes(NONCE_SIZE)

HPKE_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
"""SPEC 5.2: KEM MLKEM768-X25519 (0x647a), KDF HKDF-SHA256 (0x0001), AEAD ChaCha20-Poly1305
(0x0003), base mode, empty aad."""

_MEMBERS = {
    X25519: ("epk", KEY_SIZE),
    HYBRID: ("enc", HYBRID_ENC_SIZE),
}
"""Per stanza type: the member holding what the recipient needs besides its secret (X25519's
ephemeral public key E, HPKE's encapsulation enc), and its length in bytes."""
_TYPES = {t.value: t for t in RecipientType}


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
    """K_job wrapped to one recipient, named by its public key so auditors see who can decrypt.

    ``enc`` is what the recipient combines with its secret: for X25519 the ephemeral public key
    E (JSON member ``epk``), for a hybrid recipient the HPKE encapsulation (member ``enc``)."""

    recipient: RecipientKey
    enc: bytes
    wrapped: bytes

    @property
    def type(self) -> RecipientType:
        return self.recipient.type

    def to_json(self) -> dict[str, str]:
        member, _ = _MEMBERS[self.type]
        return {
            "type": self.type.value,
            "recipient": self.recipient.to_text(),
            member: base64.b64encode(self.enc).decode(),
            "wrapped": base64.b64encode(self.wrapped).decode(),
        }

    @classmethod
    def from_json(cls, value: object) -> Stanza:
        """A stanza of a manifest body, with the checks of SPEC 5.3 in their order: all of them
        before any decryption, so a malformed stanza is never used as a decryption oracle."""
        if not isinstance(value, dict) or value.get("type") not in _TYPES:  # S1
            shown = value.get("type") if isinstance(value, dict) else value
            raise FormatError(f"unknown recipient stanza type {shown!r}")
        kind = _TYPES[value["type"]]
        member, size = _MEMBERS[kind]
        if set(value) != {"type", "recipient", member, "wrapped"}:  # S2
            raise FormatError(
                f"an {kind.value} recipient stanza must have exactly type, recipient, {member} "
                "and wrapped"
            )
        try:  # S3
            recipient = parse_recipient_text(value["recipient"], kind)
        except KeyFormatError as e:
            raise FormatError(f"recipient stanza: {e.message}") from None
        enc = b64decode_strict(value[member], f"stanza {member}")  # S4
        if len(enc) != size:
            raise FormatError(f"recipient stanza {member} has {len(enc)} bytes, expected {size}")
        wrapped = b64decode_strict(value["wrapped"], "stanza wrapped key")  # S5
        if len(wrapped) != WRAPPED_SIZE:
            raise FormatError(
                f"recipient stanza wrapped key has {len(wrapped)} bytes, expected {WRAPPED_SIZE}"
            )
        return cls(recipient, enc, wrapped)


def _wrap_key(shared: bytes, epk: bytes, recipient: bytes) -> bytes:
    return hashlib.blake2b(LABEL_X25519_WRAP + epk + recipient, key=shared, digest_size=32).digest()


def wrap(job_key: JobKey, recipient: RecipientKey, ephemeral_secret: bytes) -> Stanza:
    """Wrap K_job to ``recipient``, in a stanza of the recipient's type.

    ``ephemeral_secret``: 32 random bytes, the X25519 ephemeral secret ``e`` of an X25519
    stanza. A hybrid stanza does not use it: its randomness is drawn inside HPKE (module
    docstring)."""
    if recipient.type is HYBRID:
        return wrap_hybrid(job_key, recipient)
    return wrap_x25519(job_key, recipient, ephemeral_secret)


def wrap_x25519(job_key: JobKey, recipient: RecipientKey, ephemeral_secret: bytes) -> Stanza:
    """SPEC 5.1: E = X25519(e, 9), W = BLAKE2b(S, label || E || R), AEAD(W, zero nonce, K_job)."""
    epk = nacl.bindings.crypto_scalarmult_base(ephemeral_secret)
    shared = nacl.bindings.crypto_scalarmult(ephemeral_secret, recipient.key)
    if not any(shared):
        raise FormatError("recipient key is a low-order point")
    wrapped = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        job_key.key, LABEL_X25519_WRAP, _ZERO_NONCE, _wrap_key(shared, epk, recipient.key)
    )
    return Stanza(recipient, epk, wrapped)


def wrap_hybrid(job_key: JobKey, recipient: RecipientKey) -> Stanza:
    """SPEC 5.2: enc || wrapped = HPKE SealBase(pkR, info = LABEL_MLKEM768X25519_WRAP, aad = "",
    K_job)."""
    try:
        out = HPKE_SUITE.encrypt(job_key.key, recipient.hpke_key, info=LABEL_MLKEM768X25519_WRAP)
    except ValueError:  # the X25519 part is a low-order point: no shared secret
        raise FormatError("recipient key is a low-order point") from None
    return Stanza(recipient, out[:HYBRID_ENC_SIZE], out[HYBRID_ENC_SIZE:])


def unwrap(stanzas: list[Stanza], identity: RecipientIdentity, key_check: bytes) -> JobKey:
    """K_job from the first stanza ``identity`` opens, checked against the manifest's key_check.

    Only stanzas naming this identity's public key (type and bytes) are tried. Raises
    NotARecipientError when none does, AuthenticationError when one does but fails to open
    (altered) or yields a key that fails key_check (a sender that gave recipients different keys,
    or tampering)."""
    me = identity.public()
    mine = [
        s
        for s in stanzas
        if s.recipient.type is me.type and hmac.compare_digest(s.recipient.key, me.key)
    ]
    if not mine:
        raise NotARecipientError(me.display(), [s.recipient.display() for s in stanzas])
    for stanza in mine:
        if me.type is HYBRID:
            key = _open_hybrid(stanza, identity)
        else:
            shared = _x25519_shared(stanza, identity)
            if shared is None:
                continue  # a low-order epk: this stanza is not for us
            key = _open_x25519(stanza, shared, me.key)
        if key is None:
            raise AuthenticationError(
                f"the key wrapped to {me.display()} failed authentication: the manifest was altered"
            )
        job_key = JobKey(key)
        if not hmac.compare_digest(job_key.key_check, key_check):
            raise AuthenticationError("the job key unwrapped for this identity fails the key check")
        return job_key
    raise AuthenticationError(f"no stanza for {me.display()} could be opened")


def _x25519_shared(stanza: Stanza, identity: RecipientIdentity) -> bytes | None:
    """S = X25519(r, E), or None when E is a low-order point (S all zero: SPEC 13.2)."""
    try:
        shared = nacl.bindings.crypto_scalarmult(identity.secret, stanza.enc)
    except nacl.exceptions.RuntimeError:
        return None
    return shared if any(shared) else None


def _open_x25519(stanza: Stanza, shared: bytes, recipient: bytes) -> bytes | None:
    """K_job, or None when the tag fails."""
    try:
        return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            stanza.wrapped, LABEL_X25519_WRAP, _ZERO_NONCE, _wrap_key(shared, stanza.enc, recipient)
        )
    except nacl.exceptions.CryptoError:
        return None


def _open_hybrid(stanza: Stanza, identity: RecipientIdentity) -> bytes | None:
    """K_job, or None when HPKE's open fails. ML-KEM's implicit rejection means a wrong key or an
    altered ``enc`` is not told apart from an altered ``wrapped``: only the tag fails."""
    try:
        return HPKE_SUITE.decrypt(
            stanza.enc + stanza.wrapped, identity.hpke_key, info=LABEL_MLKEM768X25519_WRAP
        )
    except InvalidTag:
        return None


def classic_recipients(stanzas: Iterable[Stanza]) -> list[RecipientKey]:
    """The recipients of ``stanzas`` whose stanza a quantum computer could open."""
    return [s.recipient for s in stanzas if not s.recipient.post_quantum]


def post_quantum_check(job: str, stanzas: Iterable[Stanza], *, required: bool) -> str | None:
    """The policy of ``send`` and ``rekey`` about classic (X25519) recipients: None when every
    recipient is hybrid; else a warning, or with ``required`` a ConfigError refusing the job."""
    return post_quantum_check_keys(job, [s.recipient for s in stanzas], required=required)


def post_quantum_check_keys(
    job: str, recipients: Iterable[RecipientKey], *, required: bool
) -> str | None:
    """``post_quantum_check`` on recipient keys, before any stanza is made (a follow checks
    them before it creates a replication slot)."""
    classic = [r for r in recipients if not r.post_quantum]
    if not classic:
        return None
    names = ", ".join(r.display() for r in classic)
    if required:
        raise ConfigError(
            f"job {job} has classic-only (X25519) recipients, refused by --require-pq: {names}",
            hint=PQ_HINT,
        )
    return (
        f"job {job} has classic-only (X25519) recipients, whose key wraps a future quantum "
        f"computer could open: {names}"
    )


PQ_HINT = (
    "give the recipient a hybrid identity (transferd keygen --kind recipient) and move the job "
    "with transferd rekey --add-recipient tdrpq1… --remove-recipient tdr1…"
)


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


def parse_recipient_text(value: object, kind: RecipientType = X25519) -> RecipientKey:
    """A stanza's ``recipient``: a public key text of the stanza type's kind (SPEC 5.3 S3)."""
    prefix = "tdrpq1…" if kind is HYBRID else "tdr1…"
    if not isinstance(value, str):
        raise KeyFormatError(f"the recipient of an {kind.value} stanza must be a {prefix} key")
    key = parse_key_text(value)
    if not isinstance(key, RecipientKey) or key.type is not kind:
        raise KeyFormatError(
            f"the recipient of an {kind.value} stanza must be a public recipient key ({prefix})"
        )
    return key
