"""Key text forms (bech32) and key files: every encoding round-trips, every fault is named."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.strategies import IDENTITY, SENDER, SETTINGS, keys32
from transferd.core import bech32
from transferd.core.keys import (
    RecipientIdentity,
    RecipientKey,
    SenderPublicKey,
    SenderSecretKey,
    describe,
    parse_key_file,
    parse_key_text,
    parse_recipient,
    parse_sender_public,
    render_key_file,
)
from transferd.errors import KeyFormatError

KINDS = (RecipientKey, RecipientIdentity, SenderPublicKey, SenderSecretKey)


@SETTINGS
@given(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True), st.binary(max_size=80))
def test_bech32_round_trips(hrp: str, data: bytes) -> None:
    text = bech32.encode(hrp, data)
    assert bech32.decode(text) == (hrp, data)
    assert bech32.decode(text.upper()) == (hrp, data)


@SETTINGS
@given(keys32, st.sampled_from(KINDS))
def test_every_key_kind_round_trips_through_its_text(raw: bytes, kind: type) -> None:
    key = kind(raw)
    text = key.to_text()
    assert parse_key_text(text) == key
    assert parse_key_text(f"  {text}\n") == key  # surrounding blanks are not part of the key
    if kind in (RecipientIdentity, SenderSecretKey):
        assert text == text.upper()
        assert parse_key_file(render_key_file(key, "2026-11-22T21:00:00Z")) == key
    else:
        assert text == text.lower()
        assert str(key) == text


@SETTINGS
@given(keys32, st.data())
def test_any_single_character_change_is_caught(raw: bytes, data: st.DataObject) -> None:
    text = RecipientKey(raw).to_text()
    at = data.draw(st.integers(min_value=4, max_value=len(text) - 1))
    other = data.draw(st.sampled_from(bech32.CHARSET.replace(text[at], "")))
    with pytest.raises(KeyFormatError, match="mistyped or truncated"):
        parse_key_text(text[:at] + other + text[at + 1 :])


@SETTINGS
@given(keys32, st.integers(min_value=1, max_value=50))
def test_truncation_is_caught(raw: bytes, cut: int) -> None:
    with pytest.raises(KeyFormatError):
        parse_key_text(RecipientKey(raw).to_text()[:-cut])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty key"),
        ("   ", "empty key"),
        ("tdr1Qqqqqqqq", "mixes upper and lower case"),
        ("tdrqqqqqqqqqqq", "no bech32 separator"),
        ("1qqqqqqqqqqq", "no bech32 separator"),
        ("tdr1qqqqq", "no bech32 separator"),
        ("a b1qqqqqqqqqqq", "outside printable ASCII"),
        ("tdr1qqqqqbqqqqq", "has 'b', which no key contains"),
        ("tdr1qqqqqqqqqqqq", "checksum does not match"),
    ],
)
def test_malformed_text_is_named(text: str, message: str) -> None:
    with pytest.raises(KeyFormatError, match=message):
        parse_key_text(text)


def _with_checksum(hrp: str, words: list[int]) -> str:
    polymod = bech32._polymod([*bech32._hrp_expand(hrp), *words, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(bech32.CHARSET[w] for w in words + checksum)


def test_non_zero_padding_is_refused() -> None:
    words = bech32._convert_bits(bytes(32), 8, 5, pad=True)
    words[-1] |= 1
    with pytest.raises(KeyFormatError, match="non-canonical padding"):
        bech32.decode(_with_checksum("tdr", words))


def test_five_padding_bits_are_refused() -> None:
    """One 5-bit word holds no whole byte: five leftover bits are never canonical."""
    with pytest.raises(KeyFormatError, match="non-canonical padding"):
        bech32.decode(_with_checksum("tdr", [0]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (bech32.encode("age", bytes(32)), "not a transferd key \\(prefix 'age'\\)"),
        (bech32.encode("tdr", bytes(31)), "has 31 bytes, expected 32: it is truncated or padded"),
        (bech32.encode("tds", bytes(33)), "has 33 bytes, expected 32"),
        (bech32.encode("tdr", bytes(32)).upper(), "recipient public key must be written in lower"),
        (bech32.encode("td-secret-sender-", bytes(32)), "sender secret key must be written in up"),
    ],
)
def test_well_formed_but_wrong_keys_are_named(text: str, message: str) -> None:
    with pytest.raises(KeyFormatError, match=message):
        parse_key_text(text)


def test_shortened_in_messages_never_whole() -> None:
    secret = IDENTITY.to_text()
    with pytest.raises(KeyFormatError) as caught:
        parse_key_text(secret[:-1] + ("Q" if secret[-1] != "Q" else "P"))
    assert secret[12:] not in str(caught.value)
    assert bech32._shorten("short") == "short"


def test_recipient_and_sender_parsers_reduce_secrets_and_refuse_other_kinds() -> None:
    assert parse_recipient(IDENTITY.to_text()) == IDENTITY.public()
    assert parse_recipient(IDENTITY.public().to_text()) == IDENTITY.public()
    assert parse_sender_public(SENDER.to_text()) == SENDER.public()
    assert parse_sender_public(SENDER.public().to_text()) == SENDER.public()
    with pytest.raises(KeyFormatError, match="this is a sender public key, a recipient key"):
        parse_recipient(SENDER.public().to_text())
    with pytest.raises(KeyFormatError, match="this is a recipient identity \\(secret\\), a sender"):
        parse_sender_public(IDENTITY.to_text())


def test_describe_names_each_kind() -> None:
    assert [describe(k(bytes(32))) for k in KINDS] == [
        "a recipient public key",
        "a recipient identity (secret)",
        "a sender public key",
        "a sender secret key",
    ]


def test_keys_check_their_size() -> None:
    for kind in KINDS:
        with pytest.raises(KeyFormatError, match="must be 32 bytes"):
            kind(bytes(31))
        with pytest.raises(KeyFormatError, match="must be 32 bytes"):
            kind("x" * 32)
    assert RecipientIdentity.from_bytes(bytearray(32)) == RecipientIdentity(bytes(32))
    assert SenderSecretKey.from_bytes(bytearray(32)) == SenderSecretKey(bytes(32))
    assert "secret" not in repr(IDENTITY).lower().replace("recipientidentity", "")


def test_signatures_verify_and_refuse() -> None:
    signature = SENDER.sign(b"message")
    public = SENDER.public()
    assert public.verify(b"message", signature)
    assert not public.verify(b"messagE", signature)
    assert not public.verify(b"message", signature[:63])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# only a comment\n\n", "key file holds no key"),
        (f"{IDENTITY.to_text()}\n{SENDER.to_text()}\n", "holds 2 keys, expected exactly one"),
        (f"{IDENTITY.public().to_text()}\n", "holds a recipient public key, a secret key was"),
    ],
)
def test_key_file_faults_are_named(text: str, message: str) -> None:
    with pytest.raises(KeyFormatError, match=message):
        parse_key_file(text)


def test_key_file_has_comments_and_the_secret() -> None:
    text = render_key_file(SENDER, "2026-11-22T21:00:00Z")
    assert text.splitlines() == [
        "# created: 2026-11-22T21:00:00Z",
        f"# public key: {SENDER.public().to_text()}",
        SENDER.to_text(),
    ]
    assert parse_key_file(text.replace("\n", "\r\n")) == SENDER
