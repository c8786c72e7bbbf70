"""keys.json: the four key text forms, the key file, and every way a key text is refused."""

from __future__ import annotations

from typing import Any

from common import (
    HYBRID_A,
    IDENTITY_A,
    SENDER,
    Vector,
    vector,
    vector_file,
)

from transferd.core import bech32
from transferd.core.keys import (
    HRP_RECIPIENT,
    HRP_RECIPIENT_PQ,
    HRP_RECIPIENT_PQ_SECRET,
    HRP_RECIPIENT_SECRET,
    render_key_file,
)

KEY_FAILURE = "key failure"


def _mistype(text: str, position: int) -> str:
    """``text`` with the character at ``position`` replaced by the next one of the alphabet."""
    lower = text[position].lower()
    replacement = bech32.CHARSET[(bech32.CHARSET.index(lower) + 1) % 32]
    if text == text.upper():
        replacement = replacement.upper()
    return text[:position] + replacement + text[position + 1 :]


def _encode_words(hrp: str, words: list[int]) -> str:
    """Bech32 of 5-bit ``words`` as given: lets a vector carry non-zero padding bits."""
    values = bech32._hrp_expand(hrp) + words
    polymod = bech32._polymod([*values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(bech32.CHARSET[w] for w in words + checksum)


def _valid(
    name: str,
    comment: str,
    text: str,
    parse_as: str,
    kind: str,
    key: bytes,
    flags: tuple[str, ...] = (),
    **extra: Any,
) -> Vector:
    flags = (("Deterministic",) if parse_as == "any" else ()) + flags
    return vector(name, comment, flags=flags, text=text, parse_as=parse_as, kind=kind,
                  key_hex=key.hex(), **extra)  # fmt: skip


def hybrid_valid_vectors() -> list[Vector]:
    public = HYBRID_A.public()
    key_file = render_key_file(HYBRID_A, "2026-11-22T20:00:00Z")
    pq = ("PostQuantum",)
    return [
        _valid("hybrid_recipient", "a hybrid recipient public key: 1216 bytes, 1958 characters",
               public.to_text(), "any", "recipient-pq", public.key, flags=pq),
        _valid("hybrid_identity", "a hybrid identity (a 32-byte seed); public is its key, "
               "from SHAKE256(seed, 96)", HYBRID_A.to_text(), "any", "recipient-pq-identity",
               HYBRID_A.secret, public=public.to_text(), flags=pq),
        _valid("hybrid_identity_given_as_recipient", "a hybrid identity where a recipient is "
               "expected is reduced to its public key", HYBRID_A.to_text(), "recipient",
               "recipient-pq", public.key, flags=pq),
        _valid("key_file_hybrid_identity", "a key file as keygen writes it for a hybrid "
               "identity: three comment lines (the last the fingerprint), then the key",
               key_file, "key-file", "recipient-pq-identity", HYBRID_A.secret,
               public=public.to_text(), flags=pq),
    ]  # fmt: skip


def hybrid_invalid_vectors() -> list[Vector]:
    public = HYBRID_A.public()
    text, identity = public.to_text(), HYBRID_A.to_text()
    failing_modulus = b"\xff" * 1184 + public.key[1184:]
    pq = "PostQuantum"
    return [
        _invalid("hybrid_recipient_mistyped_data_char", "one character of a hybrid key "
                 "changed", _mistype(text, 700), ("Mistyped", pq)),
        _invalid("hybrid_recipient_truncated_one_char", "the last character of a hybrid key "
                 "dropped", text[:-1], ("Mistyped", "Bounds", pq)),
        _invalid("hybrid_recipient_truncated_to_x25519_length", "a hybrid key cut to its first "
                 "62 characters", text[:62], ("Mistyped", "Bounds", pq)),
        _invalid("hybrid_recipient_1215_bytes", "a well-formed bech32 string of 1215 bytes "
                 "under tdrpq", bech32.encode(HRP_RECIPIENT_PQ, public.key[:-1]), ("Bounds", pq)),
        _invalid("hybrid_recipient_1217_bytes", "a well-formed bech32 string of 1217 bytes "
                 "under tdrpq", bech32.encode(HRP_RECIPIENT_PQ, public.key + b"\x00"),
                 ("Bounds", pq)),
        _invalid("hybrid_recipient_32_bytes", "an X25519 key's 32 bytes under tdrpq",
                 bech32.encode(HRP_RECIPIENT_PQ, IDENTITY_A.public().key), ("Bounds", pq)),
        _invalid("hybrid_identity_1216_bytes", "a hybrid identity holding a public key's "
                 "1216 bytes instead of a 32-byte seed",
                 bech32.encode(HRP_RECIPIENT_PQ_SECRET, public.key).upper(), ("Bounds", pq)),
        _invalid("hybrid_recipient_modulus_check", "1216 bytes whose ML-KEM-768 part has "
                 "coefficients of 0xfff, not below q = 3329 (FIPS 203 7.2)",
                 bech32.encode(HRP_RECIPIENT_PQ, failing_modulus), ("Malformed", pq)),
        _invalid("hybrid_recipient_upper_case", "a hybrid public key in upper case",
                 text.upper(), ("Case", pq)),
        _invalid("hybrid_identity_lower_case", "a hybrid identity in lower case",
                 identity.lower(), ("Case", pq)),
        _invalid("hybrid_where_sender_expected", "a hybrid recipient key given as a sender key",
                 text, ("WrongKind", pq), "sender"),
        _invalid("key_file_hybrid_public_key", "a key file holding a hybrid public key",
                 f"# public\n{text}\n", ("WrongKind", pq), "key-file"),
    ]  # fmt: skip


def _invalid(
    name: str, comment: str, text: str, flags: tuple[str, ...], parse_as: str = "any"
) -> Vector:
    return vector(name, comment, KEY_FAILURE, flags, text=text, parse_as=parse_as)  # fmt: skip


def valid_vectors() -> list[Vector]:
    recipient = IDENTITY_A.public()
    sender = SENDER.public()
    identity_text, secret_text = IDENTITY_A.to_text(), SENDER.to_text()
    key_file = render_key_file(IDENTITY_A, "2026-11-22T20:00:00Z")
    return [
        _valid("recipient", "a recipient public key", recipient.to_text(), "any",
               "recipient", recipient.key),
        _valid("recipient_identity", "a recipient identity; public is its X25519 public key",
               identity_text, "any", "recipient-identity", IDENTITY_A.secret,
               public=recipient.to_text()),
        _valid("sender", "a sender public key", sender.to_text(), "any", "sender", sender.key),
        _valid("sender_secret", "a sender secret key (Ed25519 seed); public is its verify key",
               secret_text, "any", "sender-secret", SENDER.seed, public=sender.to_text()),
        _valid("identity_given_as_recipient", "an identity where a recipient is expected is "
               "reduced to its public key", identity_text, "recipient", "recipient", recipient.key),
        _valid("secret_given_as_sender", "a sender secret where a sender public key is expected "
               "is reduced to its public key", secret_text, "sender", "sender", sender.key),
        _valid("key_file_recipient_identity", "a key file as keygen writes it: two comment "
               "lines, then the key", key_file, "key-file", "recipient-identity", IDENTITY_A.secret,
               public=recipient.to_text()),
        _valid("key_file_blank_and_comment_lines", "blank lines and comments anywhere are "
               "ignored", f"\n# a comment\n\n{secret_text}\n\n# another\n", "key-file",
               "sender-secret", SENDER.seed, public=sender.to_text()),
    ]  # fmt: skip


def invalid_vectors() -> list[Vector]:
    recipient = IDENTITY_A.public().to_text()
    sender = SENDER.public().to_text()
    identity, secret = IDENTITY_A.to_text(), SENDER.to_text()
    words = bech32._convert_bits(IDENTITY_A.public().key, 8, 5, pad=True)
    return [
        _invalid("recipient_mistyped_data_char", "one data character changed: the checksum "
                 "does not match", _mistype(recipient, 10), ("Mistyped",)),
        _invalid("recipient_mistyped_checksum_char", "the last (checksum) character changed",
                 _mistype(recipient, len(recipient) - 1), ("Mistyped",)),
        _invalid("identity_mistyped_data_char", "one character of a secret key changed",
                 _mistype(identity, 30), ("Mistyped",)),
        _invalid("sender_mistyped_data_char", "one character of a sender key changed",
                 _mistype(sender, 20), ("Mistyped",)),
        _invalid("recipient_truncated_one_char", "the last character dropped: the checksum "
                 "does not match", recipient[:-1], ("Mistyped", "Bounds")),
        _invalid("recipient_31_bytes", "a well-formed bech32 string of 31 bytes under tdr",
                 bech32.encode(HRP_RECIPIENT, IDENTITY_A.public().key[:31]), ("Bounds",)),
        _invalid("recipient_33_bytes", "a well-formed bech32 string of 33 bytes under tdr",
                 bech32.encode(HRP_RECIPIENT, IDENTITY_A.public().key + b"\x00"), ("Bounds",)),
        _invalid("identity_31_bytes", "a secret key of 31 bytes",
                 bech32.encode(HRP_RECIPIENT_SECRET, IDENTITY_A.secret[:31]).upper(), ("Bounds",)),
        _invalid("recipient_mixed_case", "one letter upper case in a public key",
                 recipient[:8] + recipient[8].upper() + recipient[9:], ("Case",)),
        _invalid("recipient_upper_case", "a public key written in upper case (valid bech32, "
                 "but public keys are lower case)", recipient.upper(), ("Case",)),
        _invalid("identity_lower_case", "a secret key written in lower case (secret keys are "
                 "upper case)", identity.lower(), ("Case",)),
        _invalid("sender_secret_lower_case", "a sender secret key in lower case",
                 secret.lower(), ("Case",)),
        _invalid("sender_where_recipient_expected", "a sender public key given as a recipient",
                 sender, ("WrongKind",), "recipient"),
        _invalid("sender_secret_where_recipient_expected", "a sender secret key given as a "
                 "recipient", secret, ("WrongKind",), "recipient"),
        _invalid("recipient_where_sender_expected", "a recipient key given as a sender key",
                 recipient, ("WrongKind",), "sender"),
        _invalid("identity_where_sender_expected", "a recipient identity given as a sender key",
                 identity, ("WrongKind",), "sender"),
        _invalid("unknown_prefix_age", "a valid bech32 key under age's prefix",
                 bech32.encode("age", IDENTITY_A.public().key), ("UnknownVersion",)),
        _invalid("unknown_prefix_tdx", "a valid bech32 key under an undefined td prefix",
                 bech32.encode("tdx", IDENTITY_A.public().key), ("UnknownVersion",)),
        _invalid("no_separator", "no '1' separating prefix and data",
                 recipient.replace("1", "", 1), ("Malformed",)),
        _invalid("character_outside_alphabet", "the letter b, which bech32 does not use",
                 recipient[:10] + "b" + recipient[11:], ("Malformed",)),
        _invalid("nonzero_padding", "the 4 padding bits of the last data character are not "
                 "zero (checksum valid)",
                 _encode_words(HRP_RECIPIENT, [*words[:-1], words[-1] | 1]), ("NonCanonical",)),
        _invalid("empty", "an empty key text", "", ("Malformed",)),
        _invalid("key_file_two_keys", "a key file holding two secret keys",
                 f"{identity}\n{secret}\n", ("Malformed",), "key-file"),
        _invalid("key_file_public_key", "a key file holding a public key",
                 f"# public\n{recipient}\n", ("WrongKind",), "key-file"),
        _invalid("key_file_only_comments", "a key file holding no key",
                 "# created: 2026-11-22T20:00:00Z\n\n", ("Malformed",), "key-file"),
    ]  # fmt: skip


def generate() -> dict[str, Any]:
    return vector_file(
        "keys",
        "Key text forms (bech32, BIP 173 without the 90-character limit) and key files. "
        "parse_as says what the reader expects: any key, a recipient (of either type), a sender "
        "public key, or a key file.",
        valid_vectors() + hybrid_valid_vectors() + invalid_vectors() + hybrid_invalid_vectors(),
    )
