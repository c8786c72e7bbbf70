"""The job key, its subkeys, and its wrapping to recipients."""

from __future__ import annotations

import base64

import nacl.bindings
import pytest
from hypothesis import given

from tests.core.strategies import FEW, IDENTITY, JOB_KEY, OTHER_IDENTITY, SENDER, fixed, keys32
from transferd.core import jobkey
from transferd.core.jobkey import JobKey, Stanza, b64decode_strict, unwrap, wrap
from transferd.core.keys import RecipientIdentity
from transferd.errors import AuthenticationError, FormatError, KeyFormatError, NotARecipientError


@FEW
@given(keys32, keys32, keys32)
def test_wrap_then_unwrap_round_trips(job: bytes, identity: bytes, ephemeral: bytes) -> None:
    job_key, me = JobKey(job), RecipientIdentity(identity)
    stanza = wrap(job_key, me.public(), ephemeral)
    assert Stanza.from_json(stanza.to_json()) == stanza
    assert len(stanza.wrapped) == 48
    assert unwrap([stanza], me, job_key.key_check) == job_key


def test_subkeys_are_the_labelled_kdf_outputs() -> None:
    key = JOB_KEY.key
    assert JOB_KEY.chunk_id_key == jobkey.kdf(key, b"transferd v1 chunk id")
    assert JOB_KEY.chunk_key == jobkey.kdf(key, b"transferd v1 chunk seal")
    assert JOB_KEY.catalog_key == jobkey.kdf(key, b"transferd v1 catalog seal")
    assert JOB_KEY.pack_header_key == jobkey.kdf(key, b"transferd v1 pack header")
    assert JOB_KEY.key_check == jobkey.kdf(key, b"transferd v1 key check")[:16]
    assert len({JOB_KEY.chunk_id_key, JOB_KEY.chunk_key, JOB_KEY.catalog_key}) == 3
    assert key.hex() not in repr(JOB_KEY)


@pytest.mark.parametrize("bad", [bytes(31), "x" * 32])
def test_a_job_key_is_32_bytes(bad: object) -> None:
    with pytest.raises(ValueError, match="a job key is 32 bytes"):
        JobKey(bad)  # type: ignore[arg-type]


def test_wrapping_to_a_low_order_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """libsodium itself raises on an all-zero shared secret; jobkey's own check guards against a
    binding that would return it instead, so it is shown here with one that does."""
    monkeypatch.setattr(nacl.bindings, "crypto_scalarmult", lambda n, p: bytes(32))
    with pytest.raises(FormatError, match="recipient key is a low-order point"):
        wrap(JOB_KEY, IDENTITY.public(), fixed("e"))


def test_unwrap_names_the_keys_a_copy_is_encrypted_to() -> None:
    stanza = wrap(JOB_KEY, IDENTITY.public(), fixed("e"))
    with pytest.raises(NotARecipientError) as caught:
        unwrap([stanza], OTHER_IDENTITY, JOB_KEY.key_check)
    assert caught.value.message == (
        f"this copy is not encrypted to key {OTHER_IDENTITY.public().to_text()}"
    )
    assert IDENTITY.public().to_text() in (caught.value.hint or "")


def test_unwrap_tries_only_and_every_stanza_naming_the_reader() -> None:
    mine = wrap(JOB_KEY, IDENTITY.public(), fixed("e1"))
    theirs = wrap(JOB_KEY, OTHER_IDENTITY.public(), fixed("e2"))
    assert unwrap([theirs, mine], IDENTITY, JOB_KEY.key_check) == JOB_KEY
    low_order = Stanza(IDENTITY.public(), bytes(32), mine.wrapped)
    assert unwrap([low_order, mine], IDENTITY, JOB_KEY.key_check) == JOB_KEY
    with pytest.raises(AuthenticationError, match=r"no stanza for tdr1\S+ could be opened"):
        unwrap([low_order], IDENTITY, JOB_KEY.key_check)


def test_unwrap_skips_a_zero_shared_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    mine = wrap(JOB_KEY, IDENTITY.public(), fixed("e1"))
    monkeypatch.setattr(nacl.bindings, "crypto_scalarmult", lambda n, p: bytes(32))
    with pytest.raises(AuthenticationError, match="could be opened"):
        unwrap([mine], IDENTITY, JOB_KEY.key_check)


def test_an_altered_stanza_fails_authentication() -> None:
    stanza = wrap(JOB_KEY, IDENTITY.public(), fixed("e"))
    altered = Stanza(
        stanza.recipient, stanza.enc, bytes([stanza.wrapped[0] ^ 1]) + stanza.wrapped[1:]
    )
    with pytest.raises(
        AuthenticationError, match="failed authentication: the manifest was altered"
    ):
        unwrap([altered], IDENTITY, JOB_KEY.key_check)


def test_a_key_failing_key_check_is_refused() -> None:
    stanza = wrap(JOB_KEY, IDENTITY.public(), fixed("e"))
    with pytest.raises(AuthenticationError, match="fails the key check"):
        unwrap([stanza], IDENTITY, bytes(16))


def _stanza_json() -> dict[str, str]:
    return wrap(JOB_KEY, IDENTITY.public(), fixed("e")).to_json()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "scrypt"}, "unknown recipient stanza type 'scrypt'"),
        ({"extra": "x"}, "must have exactly type, recipient, epk and wrapped"),
        (
            {"recipient": 7},
            "recipient stanza: the recipient of an X25519 stanza must be a tdr1… key",
        ),
        ({"recipient": SENDER.public().to_text()}, "must be a public recipient key"),
        ({"recipient": "tdr1qqqqqqqqqqqq"}, "recipient stanza: key tdr1qqqqqqqq… is mistyped"),
        ({"epk": base64.b64encode(bytes(31)).decode()}, "epk has 31 bytes, expected 32"),
        ({"wrapped": base64.b64encode(bytes(47)).decode()}, "has 47 bytes, expected 48"),
        ({"epk": 5}, "stanza epk must be a base64 string"),
        ({"epk": "not base64!"}, "stanza epk is not valid base64"),
        ({"wrapped": "AB=="}, "stanza wrapped key is not canonical base64"),
    ],
)
def test_malformed_stanzas_are_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Stanza.from_json(_stanza_json() | change)


def test_a_stanza_is_an_object() -> None:
    with pytest.raises(FormatError, match="unknown recipient stanza type"):
        Stanza.from_json(["X25519"])


def test_strict_base64() -> None:
    assert b64decode_strict("AAAA", "x") == bytes(3)
    for bad in ("AAA", "AA==\n", "AB==", " AAAA"):
        with pytest.raises(FormatError):
            b64decode_strict(bad, "x")


def test_parse_recipient_text() -> None:
    assert jobkey.parse_recipient_text(IDENTITY.public().to_text()) == IDENTITY.public()
    with pytest.raises(KeyFormatError, match="must be a tdr1"):
        jobkey.parse_recipient_text(None)
