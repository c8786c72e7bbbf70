"""wrap.json: K_job wrapped to recipients (X25519 and hybrid stanzas), unwrapped, and refused."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import hybrid_seal
import nacl.bindings
from common import (
    HYBRID_A,
    HYBRID_B,
    IDENTITY_A,
    IDENTITY_B,
    IDENTITY_C,
    JOB_KEY,
    OTHER_JOB_KEY,
    SENDER,
    Vector,
    det,
    flip_bit,
    vector,
    vector_file,
)

from transferd.core.constants import LABEL_MLKEM768X25519_WRAP, LABEL_X25519_WRAP
from transferd.core.jobkey import JobKey, Stanza, unwrap, wrap
from transferd.core.keys import RecipientIdentity

EPHEMERAL_1 = det("wrap ephemeral secret 1")
EPHEMERAL_2 = det("wrap ephemeral secret 2")


AGE_INFO = b"age-encryption.org/mlkem768x25519"


def _hybrid(identity: RecipientIdentity, label: str, *, info: bytes = LABEL_MLKEM768X25519_WRAP,
            job_key: JobKey = JOB_KEY) -> tuple[dict[str, str], dict[str, str]]:  # fmt: skip
    """A hybrid stanza to ``identity`` from injected randomness, and its ``wraps`` entry. The
    stanza is checked to open with transferd's unwrap (pyca, that is OpenSSL) when ``info`` is
    transferd's: hybrid_seal is then right, line by line."""
    m, e = det(f"hybrid encapsulation seed {label}"), det(f"hybrid ephemeral secret {label}")
    out = hybrid_seal.seal(job_key.key, identity.public().key, info, m, e)
    stanza = Stanza(identity.public(), out[:1120], out[1120:])
    if info == LABEL_MLKEM768X25519_WRAP:
        assert unwrap([stanza], identity, job_key.key_check) == job_key  # noqa: S101
    entry = {"recipient": identity.public().to_text(), "mlkem_seed": m.hex(),
             "ephemeral_secret": e.hex()}  # fmt: skip
    return stanza.to_json(), entry


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _stanza(identity: RecipientIdentity, ephemeral: bytes) -> dict[str, str]:
    return wrap(JOB_KEY, identity.public(), ephemeral).to_json()


def _wrap_variant(identity: RecipientIdentity, ephemeral: bytes, *, kdf_recipient: bool,
                  ad: bytes) -> dict[str, str]:  # fmt: skip
    """A stanza a faulty sender could write: R left out of the wrap key's KDF, or another AD."""
    epk = nacl.bindings.crypto_scalarmult_base(ephemeral)
    recipient = identity.public().key
    shared = nacl.bindings.crypto_scalarmult(ephemeral, recipient)
    message = LABEL_X25519_WRAP + epk + (recipient if kdf_recipient else b"")
    wrap_key = hashlib.blake2b(message, key=shared, digest_size=32).digest()
    wrapped = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        JOB_KEY.key, ad, bytes(24), wrap_key
    )
    return Stanza(identity.public(), epk, wrapped).to_json()


def _tamper(stanza: dict[str, str], field: str, byte_index: int) -> dict[str, str]:
    raw = base64.b64decode(stanza[field])
    return stanza | {field: _b64(flip_bit(raw, byte_index))}


def _wraps(*pairs: tuple[RecipientIdentity, bytes]) -> list[dict[str, str]]:
    return [{"recipient": i.public().to_text(), "ephemeral_secret": e.hex()} for i, e in pairs]


def _subkeys() -> dict[str, str]:
    return {
        "chunk_id": JOB_KEY.chunk_id_key.hex(),
        "chunk_seal": JOB_KEY.chunk_key.hex(),
        "catalog_seal": JOB_KEY.catalog_key.hex(),
        "pack_header": JOB_KEY.pack_header_key.hex(),
        "key_check": JOB_KEY.key_check.hex(),
    }


def _unwrap(name: str, comment: str, expect: str, flags: tuple[str, ...], identity: str,
            stanzas: list[Any], **extra: Any) -> Vector:  # fmt: skip
    key_check = extra.pop("key_check", _b64(JOB_KEY.key_check))
    return vector(name, comment, expect, flags, identity=identity, stanzas=stanzas,
                  key_check=key_check, **extra)  # fmt: skip


def valid_vectors() -> list[Vector]:
    to_a = _stanza(IDENTITY_A, EPHEMERAL_1)
    to_b = _stanza(IDENTITY_B, EPHEMERAL_2)
    job_key = JOB_KEY.key.hex()
    return [
        _unwrap("single_recipient", "K_job wrapped to A; subkeys are the KDF outputs of K_job",
                "success", ("Deterministic",), IDENTITY_A.to_text(), [to_a], job_key=job_key,
                wraps=_wraps((IDENTITY_A, EPHEMERAL_1)), subkeys=_subkeys()),
        _unwrap("second_of_two_stanzas", "stanzas to B then A, unwrapped by A: the stanza "
                "naming A is used", "success", ("Deterministic",), IDENTITY_A.to_text(),
                [to_b, to_a], job_key=job_key,
                wraps=_wraps((IDENTITY_B, EPHEMERAL_2), (IDENTITY_A, EPHEMERAL_1))),
        _unwrap("first_of_two_stanzas", "stanzas to B then A, unwrapped by B", "success",
                ("Deterministic",), IDENTITY_B.to_text(), [to_b, to_a], job_key=job_key,
                wraps=_wraps((IDENTITY_B, EPHEMERAL_2), (IDENTITY_A, EPHEMERAL_1))),
    ]  # fmt: skip


def hybrid_valid_vectors() -> list[Vector]:
    h_a, w_a = _hybrid(HYBRID_A, "1")
    h_b, w_b = _hybrid(HYBRID_B, "2")
    to_a = _stanza(IDENTITY_A, EPHEMERAL_1)
    x_a = {"recipient": IDENTITY_A.public().to_text(), "ephemeral_secret": EPHEMERAL_1.hex()}
    job_key = JOB_KEY.key.hex()
    det_pq, mixed = ("Deterministic", "PostQuantum"), ("Deterministic", "PostQuantum", "Mixed")
    return [
        _unwrap("hybrid_single_recipient", "K_job wrapped to the hybrid recipient HA (HPKE "
                "MLKEM768-X25519, the randomness given as mlkem_seed and ephemeral_secret)",
                "success", det_pq, HYBRID_A.to_text(), [h_a], job_key=job_key, wraps=[w_a]),
        _unwrap("hybrid_second_of_two", "stanzas to HB then HA, unwrapped by HA", "success",
                det_pq, HYBRID_A.to_text(), [h_b, h_a], job_key=job_key, wraps=[w_b, w_a]),
        _unwrap("mixed_opened_by_hybrid", "an X25519 stanza to A and a hybrid stanza to HA, "
                "unwrapped by HA", "success", mixed, HYBRID_A.to_text(), [to_a, h_a],
                job_key=job_key, wraps=[x_a, w_a]),
        _unwrap("mixed_opened_by_x25519", "the same list, unwrapped by A", "success", mixed,
                IDENTITY_A.to_text(), [to_a, h_a], job_key=job_key, wraps=[x_a, w_a]),
    ]  # fmt: skip


def hybrid_invalid_vectors() -> list[Vector]:
    h_a, _ = _hybrid(HYBRID_A, "1")
    h_b, _ = _hybrid(HYBRID_B, "2")
    age, _ = _hybrid(HYBRID_A, "3", info=AGE_INFO)
    other_key, _ = _hybrid(HYBRID_A, "4", job_key=OTHER_JOB_KEY)
    to_a = _stanza(IDENTITY_A, EPHEMERAL_1)
    ha, a = HYBRID_A.to_text(), IDENTITY_A.to_text()
    enc = base64.b64decode(h_a["enc"])
    nar, auth, fmt = "not a recipient", "authentication failure", "format failure"
    pq = "PostQuantum"
    return [
        _unwrap("hybrid_wrong_identity", "wrapped to HA, unwrapped by HB: no stanza names HB",
                nar, ("WrongKey", pq), HYBRID_B.to_text(), [h_a]),
        _unwrap("hybrid_stanza_for_x25519_identity", "a hybrid stanza to HA only, unwrapped "
                "by the X25519 identity A", nar, ("WrongKey", pq, "Mixed"), a, [h_a]),
        _unwrap("hybrid_relabelled_to_reader", "HB's stanza with recipient changed to HA: it is "
                "tried, and ML-KEM's implicit rejection leaves only the tag to fail", auth,
                ("Tampered", pq), ha, [h_b | {"recipient": HYBRID_A.public().to_text()}]),
        _unwrap("hybrid_enc_mlkem_bit_flipped", "one bit of the ML-KEM ciphertext (enc[0:1088]) "
                "flipped", auth, ("Tampered", pq), ha, [_tamper(h_a, "enc", 10)]),
        _unwrap("hybrid_enc_x25519_bit_flipped", "one bit of the X25519 share (enc[1088:1120]) "
                "flipped", auth, ("Tampered", pq), ha, [_tamper(h_a, "enc", 1100)]),
        _unwrap("hybrid_enc_x25519_low_order", "the X25519 share replaced by the all-zero point",
                auth, ("Malformed", pq), ha, [h_a | {"enc": _b64(enc[:1088] + bytes(32))}]),
        _unwrap("hybrid_wrapped_bit_flipped", "one bit of the sealed job key flipped", auth,
                ("Tampered", pq), ha, [_tamper(h_a, "wrapped", 3)]),
        _unwrap("hybrid_wrapped_tag_bit_flipped", "one bit of the tag flipped", auth,
                ("Tampered", pq), ha, [_tamper(h_a, "wrapped", 47)]),
        _unwrap("hybrid_sealed_with_age_info", "sealed with age's info "
                "(age-encryption.org/mlkem768x25519) instead of transferd's: a stanza of one "
                "tool never opens as the other's", auth, ("Malformed", pq), ha, [age]),
        _unwrap("hybrid_key_check_mismatch", "the stanza opens to another job's key: key_check "
                "is still checked", auth, ("WrongKey", pq), ha, [other_key]),
        _unwrap("hybrid_enc_1119_bytes", "enc one byte short", fmt, ("Bounds", pq), ha,
                [h_a | {"enc": _b64(enc[:-1])}]),
        _unwrap("hybrid_enc_1121_bytes", "enc one byte long", fmt, ("Bounds", pq), ha,
                [h_a | {"enc": _b64(enc + b"\x00")}]),
        _unwrap("hybrid_wrapped_47_bytes", "the sealed job key one byte short", fmt,
                ("Bounds", pq), ha,
                [h_a | {"wrapped": _b64(base64.b64decode(h_a["wrapped"])[:47])}]),
        _unwrap("hybrid_enc_named_epk", "a hybrid stanza whose enc member is named epk", fmt,
                ("Malformed", pq), ha,
                [{"epk" if k == "enc" else k: v for k, v in h_a.items()}]),
        _unwrap("hybrid_stanza_names_x25519_key", "a hybrid stanza whose recipient is a tdr1 "
                "key", fmt, ("Malformed", pq, "Mixed"), a,
                [h_a | {"recipient": IDENTITY_A.public().to_text()}]),
        _unwrap("x25519_stanza_names_hybrid_key", "an X25519 stanza whose recipient is a "
                "tdrpq1 key", fmt, ("Malformed", pq, "Mixed"), ha,
                [to_a | {"recipient": HYBRID_A.public().to_text()}]),
        _unwrap("hybrid_enc_not_canonical_base64", "enc without its base64 padding", fmt,
                ("NonCanonical", pq), ha, [h_a | {"enc": h_a["enc"].rstrip("=")}]),
    ]  # fmt: skip


def invalid_vectors() -> list[Vector]:
    to_a = _stanza(IDENTITY_A, EPHEMERAL_1)
    to_c = _stanza(IDENTITY_C, EPHEMERAL_1)
    a = IDENTITY_A.to_text()
    nar, auth, fmt = "not a recipient", "authentication failure", "format failure"
    return [
        _unwrap("wrong_identity", "wrapped to A, unwrapped by C: no stanza names C", nar,
                ("WrongKey",), IDENTITY_C.to_text(), [to_a]),
        _unwrap("no_stanzas", "an empty stanza list", nar, ("Malformed",), a, []),
        _unwrap("stanza_relabelled_to_other_recipient", "A's stanza with recipient changed to "
                "C: stanzas that do not name the reader's key are not tried", nar, ("Tampered",),
                a, [to_a | {"recipient": IDENTITY_C.public().to_text()}]),
        _unwrap("stanza_relabelled_to_reader", "C's stanza with recipient changed to A: it is "
                "tried and fails", auth, ("Tampered",), a,
                [to_c | {"recipient": IDENTITY_A.public().to_text()}]),
        _unwrap("wrapped_bit_flipped", "one bit of the wrapped key flipped: the tag fails",
                auth, ("Tampered",), a, [_tamper(to_a, "wrapped", 3)]),
        _unwrap("wrapped_tag_bit_flipped", "one bit of the wrapped key's tag flipped",
                auth, ("Tampered",), a, [_tamper(to_a, "wrapped", 47)]),
        _unwrap("epk_bit_flipped", "one bit of the ephemeral public key flipped", auth,
                ("Tampered",), a, [_tamper(to_a, "epk", 5)]),
        _unwrap("epk_low_order_zero", "the ephemeral key is the all-zero point: the shared "
                "secret is zero, the stanza is skipped, and no stanza is left", auth,
                ("Malformed",), a, [to_a | {"epk": _b64(bytes(32))}]),
        _unwrap("wrap_key_without_recipient", "W computed without R in the KDF message",
                auth, ("Malformed",), a,
                [_wrap_variant(IDENTITY_A, EPHEMERAL_1, kdf_recipient=False,
                               ad=LABEL_X25519_WRAP)]),
        _unwrap("wrapped_without_ad", "K_job sealed with empty associated data", auth,
                ("Malformed",), a,
                [_wrap_variant(IDENTITY_A, EPHEMERAL_1, kdf_recipient=True, ad=b"")]),
        _unwrap("key_check_mismatch", "the stanza opens, but key_check is another job key's: "
                "the unwrapped key MUST be refused", auth, ("WrongKey",), a, [to_a],
                key_check=_b64(OTHER_JOB_KEY.key_check)),
        _unwrap("stanza_unknown_type", "type scrypt", fmt, ("UnknownVersion",), a,
                [to_a | {"type": "scrypt"}]),
        _unwrap("stanza_extra_field", "a member beyond type, recipient, epk and wrapped", fmt,
                ("Malformed",), a, [to_a | {"note": "x"}]),
        _unwrap("stanza_without_recipient", "no recipient member", fmt, ("Malformed",), a,
                [{k: v for k, v in to_a.items() if k != "recipient"}]),
        _unwrap("stanza_recipient_is_sender_key", "recipient holds a sender key (tds1)", fmt,
                ("Malformed",), a, [to_a | {"recipient": SENDER.public().to_text()}]),
        _unwrap("stanza_recipient_upper_case", "recipient written in upper case", fmt,
                ("NonCanonical",), a, [to_a | {"recipient": to_a["recipient"].upper()}]),
        _unwrap("stanza_wrapped_47_bytes", "the wrapped key one byte short", fmt, ("Bounds",), a,
                [to_a | {"wrapped": _b64(base64.b64decode(to_a["wrapped"])[:47])}]),
        _unwrap("stanza_epk_33_bytes", "the ephemeral key one byte long", fmt, ("Bounds",), a,
                [to_a | {"epk": _b64(base64.b64decode(to_a["epk"]) + b"\x00")}]),
        _unwrap("stanza_epk_unpadded_base64", "base64 without its padding", fmt,
                ("NonCanonical",), a, [to_a | {"epk": to_a["epk"].rstrip("=")}]),
        _unwrap("stanza_epk_nonzero_pad_bits", "base64 whose unused bits are not zero", fmt,
                ("NonCanonical",), a,
                [to_a | {"epk": to_a["epk"][:42] + chr(ord(to_a["epk"][42]) + 1) + "="}]),
    ]  # fmt: skip


def generate() -> dict[str, Any]:
    return vector_file(
        "wrap",
        "K_job wrapped to recipients, X25519 and hybrid (mlkem768x25519). Unwrap: parse every "
        "stanza, try those of the identity's type naming its public key (none: not a recipient; "
        "none opens: authentication failure), then compare key_check. Wrap (Deterministic "
        "vectors): stanzas[i] = wrap(K_job, wraps[i].recipient) with the ephemeral secret "
        "wraps[i].ephemeral_secret, and for a hybrid recipient the ML-KEM-768 encapsulation "
        "seed wraps[i].mlkem_seed (FIPS 203 ML-KEM.Encaps_internal's m).",
        valid_vectors() + hybrid_valid_vectors() + invalid_vectors() + hybrid_invalid_vectors(),
    )
