"""Hybrid post-quantum recipients (ML-KEM-768 + X25519): keys, stanzas, and what each fault gives.

The stanza's randomness is drawn inside pyca's HPKE, so these tests go round trip; the vectors
(protocol/vectors/wrap.json) pin stanzas made with injected randomness in the open direction, and
age's own example stanza is a known answer from another implementation (filippo.io/hpke).
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from tests.core.strategies import JOB_KEY, fixed
from transferd.core import bech32, jobkey
from transferd.core.constants import HYBRID_ENC_SIZE, HYBRID_PUBLIC_SIZE
from transferd.core.jobkey import HPKE_SUITE, Stanza, post_quantum_check, unwrap, wrap
from transferd.core.keys import (
    HYBRID,
    X25519,
    RecipientIdentity,
    RecipientKey,
    parse_key_text,
    parse_recipient,
)
from transferd.errors import (
    AuthenticationError,
    ConfigError,
    FormatError,
    KeyFormatError,
    NotARecipientError,
)

ME = RecipientIdentity.hybrid(fixed("hybrid tests identity"))
OTHER = RecipientIdentity.hybrid(fixed("hybrid tests other identity"))
CLASSIC = RecipientIdentity(fixed("hybrid tests classic identity"))


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def test_a_hybrid_identity_and_its_key_have_their_sizes_and_prefixes() -> None:
    public = ME.public()
    assert public.type is HYBRID
    assert public.post_quantum
    assert len(public.key) == HYBRID_PUBLIC_SIZE == 1216
    assert public.to_text().startswith("tdrpq1")
    assert len(public.to_text()) == 1958
    assert ME.to_text().startswith("TD-SECRET-RECIPIENT-PQ-1")
    assert len(ME.to_text()) == 82
    assert parse_key_text(ME.to_text()) == ME
    assert parse_key_text(public.to_text()) == public
    assert parse_recipient(ME.to_text()) == public
    assert public.fingerprint() == hashlib.sha256(public.key).hexdigest()[:16]
    assert public.fingerprint() in public.display()
    assert len(public.display()) < 60


def test_a_hybrid_and_a_classic_identity_of_one_seed_are_different_recipients() -> None:
    seed = fixed("one seed")
    hybrid, classic = RecipientIdentity.hybrid(seed), RecipientIdentity(seed)
    assert hybrid != classic
    assert hybrid.public().key[-32:] != classic.public().key  # SHAKE256 expansion, not the seed
    stanza = wrap(JOB_KEY, hybrid.public(), b"")
    with pytest.raises(NotARecipientError):
        unwrap([stanza], classic, JOB_KEY.key_check)


def test_wrap_then_unwrap_round_trips_and_the_stanza_is_3580_bytes() -> None:
    stanza = wrap(JOB_KEY, ME.public(), b"")
    assert len(stanza.enc) == HYBRID_ENC_SIZE
    assert len(stanza.wrapped) == 48
    assert set(stanza.to_json()) == {"type", "recipient", "enc", "wrapped"}
    assert stanza.to_json()["type"] == "mlkem768x25519"
    assert len(_canonical(stanza.to_json())) == 3580
    assert Stanza.from_json(stanza.to_json()) == stanza
    assert unwrap([stanza], ME, JOB_KEY.key_check) == JOB_KEY
    assert wrap(JOB_KEY, ME.public(), b"") != stanza  # fresh randomness every time


def test_a_mixed_list_opens_for_each_of_its_recipients() -> None:
    stanzas = [
        wrap(JOB_KEY, CLASSIC.public(), fixed("e")),
        wrap(JOB_KEY, ME.public(), b""),
        wrap(JOB_KEY, OTHER.public(), b""),
    ]
    parsed = [Stanza.from_json(s.to_json()) for s in stanzas]
    for identity in (CLASSIC, ME, OTHER):
        assert unwrap(parsed, identity, JOB_KEY.key_check) == JOB_KEY


def test_faults_each_give_their_class() -> None:
    stanza = wrap(JOB_KEY, ME.public(), b"")

    def altered(enc: bytes = stanza.enc, wrapped: bytes = stanza.wrapped) -> list[Stanza]:
        return [Stanza(stanza.recipient, enc, wrapped)]

    def flip(data: bytes, at: int) -> bytes:
        return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]

    with pytest.raises(NotARecipientError):
        unwrap([stanza], OTHER, JOB_KEY.key_check)
    relabelled = Stanza(OTHER.public(), stanza.enc, stanza.wrapped)  # implicit rejection
    for faulty in (
        [relabelled],
        altered(enc=flip(stanza.enc, 0)),  # the ML-KEM ciphertext
        altered(enc=flip(stanza.enc, 1100)),  # the X25519 share
        altered(enc=stanza.enc[:1088] + bytes(32)),  # a low-order X25519 share
        altered(wrapped=flip(stanza.wrapped, 0)),
        altered(wrapped=flip(stanza.wrapped, 47)),  # the tag
    ):
        identity = OTHER if faulty[0] is relabelled else ME
        with pytest.raises(AuthenticationError) as caught:
            unwrap(faulty, identity, JOB_KEY.key_check)
        assert type(caught.value) is AuthenticationError
    with pytest.raises(AuthenticationError, match="key check"):
        unwrap([stanza], ME, bytes(16))


def _json(**change: object) -> dict[str, object]:
    return wrap(JOB_KEY, ME.public(), b"").to_json() | change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"enc": base64.b64encode(bytes(HYBRID_ENC_SIZE - 1)).decode()}, "1119 bytes"),
        ({"enc": base64.b64encode(bytes(HYBRID_ENC_SIZE + 1)).decode()}, "1121 bytes"),
        ({"wrapped": base64.b64encode(bytes(47)).decode()}, "47 bytes"),
        ({"recipient": CLASSIC.public().to_text()}, "tdrpq1"),
        ({"type": "X25519"}, "exactly type, recipient, epk"),
        ({"type": "mlkem1024p384"}, "unknown recipient stanza type"),
    ],
    ids=["enc_1119", "enc_1121", "wrapped_47", "classic_recipient", "x25519_type", "unknown_type"],
)
def test_malformed_hybrid_stanzas_are_format_failures(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(FormatError, match=message):
        Stanza.from_json(_json(**change))


def test_an_x25519_stanza_naming_a_hybrid_key_is_a_format_failure() -> None:
    classic = wrap(JOB_KEY, CLASSIC.public(), fixed("e")).to_json()
    with pytest.raises(FormatError, match=r"\(tdr1…\)"):
        Stanza.from_json(classic | {"recipient": ME.public().to_text()})
    swapped = {"enc": classic["epk"]} | {k: v for k, v in classic.items() if k != "epk"}
    with pytest.raises(FormatError, match="exactly type, recipient, epk"):
        Stanza.from_json(swapped)


def test_a_key_failing_the_ml_kem_modulus_check_is_refused_by_name() -> None:
    bad = b"\xff" * 1184 + ME.public().key[1184:]
    with pytest.raises(KeyFormatError, match="modulus check"):
        RecipientKey(bad, HYBRID)
    with pytest.raises(KeyFormatError, match="modulus check"):
        parse_key_text(bech32.encode("tdrpq", bad))
    with pytest.raises(KeyFormatError, match="has 1215 bytes, expected 1216"):
        parse_key_text(bech32.encode("tdrpq", ME.public().key[:-1]))


def test_wrapping_to_a_low_order_x25519_part_is_refused() -> None:
    low = RecipientKey(ME.public().key[:1184] + bytes(32), HYBRID)
    with pytest.raises(FormatError, match="low-order"):
        wrap(JOB_KEY, low, b"")


def test_the_policy_warns_about_classic_recipients_or_refuses_them() -> None:
    hybrid = [wrap(JOB_KEY, ME.public(), b"")]
    mixed = [*hybrid, wrap(JOB_KEY, CLASSIC.public(), fixed("e"))]
    assert post_quantum_check("j", hybrid, required=True) is None
    warning = post_quantum_check("j", mixed, required=False)
    assert warning is not None
    assert CLASSIC.public().to_text() in warning
    assert "\n" not in warning
    with pytest.raises(ConfigError, match="--require-pq") as caught:
        post_quantum_check("j", mixed, required=True)
    assert "rekey" in (caught.value.hint or "")
    assert jobkey.classic_recipients(mixed) == [CLASSIC.public()]
    assert CLASSIC.public().type is X25519


# age's example (C2SP age.md, "Hybrid post-quantum recipient"): the identity, the SHA-256 of its
# age1pq1… recipient, and the stanza age.md prints, which opens to the file key it names.
AGE_IDENTITY = "AGE-SECRET-KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR"
AGE_RECIPIENT_SHA256 = "5056b0a336f9428f482bc9c6c51c0b3f679cf104a9024403fe74066b0eed5374"
AGE_ENC = (
    "U7E10Aon27j1oDrH7fP3B++SPROSnDVvQpBemzOM+ZcsojxJifUbeeYWejMYKNB+H3rlXNvgtDKfSCkt78oqncr3"
    "faY1JtMj0GQPBZ2g6t8o1cMzZgyLMepeVuTQKxLqnM6L48n8dJL2y0N3i7WSOV6csB79r9tcIs88Al9iCwVLpt74"
    "OzDXAIwD1QlCAvj75ZEnwtgP6Xr6s+wHg9hLD0OSSQOaTdCqzR5shQWyrjVs7GCqd/5WbNGYNaolPQJBu9wTNhHj"
    "P9XGCTv8iKXkYwXDYujInkF5hOjpCHE8Vu+9UeMI+l0GJAEervT51bwaf288GiqgapP5g4HF8V4P0+03B/SwXhvx"
    "xZpKjTU2OcFS8I9chtEZ7Ucw5bvPkC1lyjNnqQXZyc4JnAqbFQTlPGnwbEsm0UGE+v0FOxTBznIivHoPHV++5PuY"
    "pombiV/lfYy8BFx0Hk1igNI3iLNjlIg4MLXNWjN3VROlXIiSsWNXjr/Frh/OE87PXoaKhsDPWfv6akd9PxSDqJMQ"
    "4j8k11kCSOnnU8Rw4TSVnTpt7gfYzBULrMr7qDgyH/TYvp0o7mAq4IaraFJmTqm+LjfAJT4PCQOpnMNRHLyXZn6m"
    "tMUujNv7+zR/I9Vqi+bJdQBwNWdJcUQVarqx2zxV2rM7l+j0gsmxjxp5yAPyALzla7XzVvbboLMnHeM+CzN4GoB2"
    "PC4neVDSw7Dfs8vbm7f9CeDGvhjWrzcSCOsUCalvH1WkbpE0b9cE/TSJqwXFXEc8npTSQWH58RXDALNF3qCbW5La"
    "boD4wCloClEakgljT0s0mTdqIwzj4xtdlX0S2dCtaV5MHQJiQHGwPvBSCiIsh8ZWJPwZ7Ron7xoWgNI0lXRqhKm7"
    "fvFNCzF+Ray2kOyKWHbsMy3a5Zx3yZxCGFwexAxgYfAH9HJ1raHi1XYGpNpBlDXg47U1y4uU7RBeBb4ewETv/B/p"
    "8sGW88tIY87dHM2xHjnntGXLvkCIkmjXGNULAVYHxDPJTygxSF7uTVPYCBUk5KeLnDVcgWF8p/wxigza47ptMtpV"
    "tm9ZrSEu9vzOnaTN3KO75RkkLuZszhXfmMZ46NQrdS7Y6duCiN501BnR5BUC4dX4iMxchix6aLN3pKv6UOEwwcx2"
    "aSF4Ib963MAtTPEjhqe+dt0VcTar/08uLWv1kQQueFaEGet4KQ975ZqaoU3PmZH9gqTOumX1EKf0Pnl0F3NMW+lE"
    "OlnCEce99zHBwBf7LV0pLNLDONBxpQySrZUQsNfhAq2Ktf5nG2hcGAMFMWIsEOuOyzEe+l2aHW4/ojOjU1Oqy4TL"
    "zVVRlWmPxQde7qKbvBN7CQhDqJHJA2nphQT/4DOdLqkwRiauMmnfx9FI3+hYnX25NpnyvM/Pt94vpsRkhcuttu4/"
    "G4xOYTNQd2YWjGwhypZ0oPSiriuTbhj6y2qm33jiwxvegeDz8CmAIhOEY2JoVpjjX9XzuNR2f5KTLmLzEkOcJQ"
)
AGE_BODY = "c/k+TjhBA6Je1DF8rxZhe2Jm8CN0zbkV9rre6nA8g98"
AGE_FILE_KEY = "df56f61c8e496609c18d25c197451803"


def test_age_example_is_a_known_answer_for_key_expansion_and_hpke() -> None:
    """Go's filippo.io/hpke made it; pyca, with transferd's seed expansion, must open it."""
    hrp, seed = bech32.decode(AGE_IDENTITY)
    assert hrp == "age-secret-key-pq-"
    identity = RecipientIdentity.hybrid(seed)
    assert hashlib.sha256(identity.public().key).hexdigest() == AGE_RECIPIENT_SHA256

    def unpadded(text: str) -> bytes:
        return base64.b64decode(text + "=" * (-len(text) % 4))

    enc, body = unpadded(AGE_ENC), unpadded(AGE_BODY)
    assert len(enc) == HYBRID_ENC_SIZE
    key = HPKE_SUITE.decrypt(
        enc + body, identity.hpke_key, info=b"age-encryption.org/mlkem768x25519"
    )
    assert key.hex() == AGE_FILE_KEY
