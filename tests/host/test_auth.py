"""Request signing as pure functions: the signed string, header grammar, clocks, nonces, grants."""

from __future__ import annotations

import base64

import pytest

from tests.stores.backends import SENDER
from transferd.core.keys import SenderSecretKey
from transferd.core.request_signing import authorization, content_sha256, signing_string
from transferd.errors import ApiError, ConfigError, KeyFormatError
from transferd.host.auth import (
    Authorizer,
    NonceCache,
    parse_authorization,
    parse_grant,
    verify,
)

EMPTY = content_sha256(b"")
NONCE = "AAECAwQFBgcICQoLDA0ODw"  # base64url of bytes 0..15, unpadded
REQUEST = {
    "method": "GET",
    "target": "/v1/jobs/dcir/objects?after=" + "0" * 64 + "&limit=10",
    "content_sha256": EMPTY,
    "host": "store.example.org:8443",
}


def test_the_signed_string_is_exactly_the_documented_one() -> None:
    """The example of protocol/HTTP.md, "The signed string", byte for byte."""
    assert signing_string(**REQUEST, ts=1_800_000_000, nonce=NONCE) == (
        b"transferd-request v1\n"
        b"GET\n"
        b"/v1/jobs/dcir/objects?after=" + b"0" * 64 + b"&limit=10\n"
        b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        b"1800000000\n"
        b"AAECAwQFBgcICQoLDA0ODw\n"
        b"store.example.org:8443"
    )


def test_the_example_request_of_http_md_is_reproduced_exactly() -> None:
    """protocol/HTTP.md §2: the seed 0x00..0x1f signs a PUT of b"hello" at 1800000000."""
    name = content_sha256(b"hello")
    header = authorization(
        SenderSecretKey(bytes(range(32))),
        method="PUT",
        target=f"/v1/jobs/snds-dcir/objects/{name}",
        content_sha256=name,
        host="store.example.org:8443",
        ts=1_800_000_000,
        nonce=base64.urlsafe_b64encode(bytes(range(16))).rstrip(b"=").decode(),
    )

    assert name == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert header == (
        "TD1 key=tds1qwss00lnecgtu8tsm5vwwj7qn9n7f43snwjs6hcamjrxgyj4xxuqgwxryd, ts=1800000000, "
        "nonce=AAECAwQFBgcICQoLDA0ODw, sig=8sncRi5aLjXBeUe3RvA7Vw5IP2FVuWLYBkBxE4KQHa9eTDgPW5xV7A7"
        "7cJB2UzXGEAbLus66jFmw0u9P6EgPCg=="
    )


def test_a_header_parses_back_and_verifies() -> None:
    header = authorization(SENDER, **REQUEST, ts=1_800_000_000, nonce=NONCE)
    creds = parse_authorization(header)

    assert header.startswith(
        f"TD1 key={SENDER.public().to_text()}, ts=1800000000, nonce={NONCE}, sig="
    )
    assert (creds.key, creds.ts, creds.nonce) == (SENDER.public(), 1_800_000_000, NONCE)
    verify(creds, **REQUEST, now=1_800_000_000)


@pytest.mark.parametrize(
    "field", ["method", "target", "content_sha256", "host"], ids=lambda f: f"altered-{f}"
)
def test_changing_any_signed_part_breaks_the_signature(field: str) -> None:
    creds = parse_authorization(authorization(SENDER, **REQUEST, ts=1_800_000_000, nonce=NONCE))
    altered = {**REQUEST, field: "P" + REQUEST[field][1:]}

    with pytest.raises(ApiError) as caught:
        verify(creds, **altered, now=1_800_000_000)

    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    assert "does not verify" in caught.value.message


def test_a_signature_by_another_key_under_this_key_does_not_verify() -> None:
    other = SenderSecretKey(bytes([3] * 32))
    header = authorization(other, **REQUEST, ts=1_800_000_000, nonce=NONCE)
    forged = header.replace(other.public().to_text(), SENDER.public().to_text())

    with pytest.raises(ApiError, match="does not verify"):
        verify(parse_authorization(forged), **REQUEST, now=1_800_000_000)


@pytest.mark.parametrize(("skew", "word"), [(301, "behind"), (-301, "ahead of")])
def test_a_timestamp_outside_the_window_is_clock_skew(skew: int, word: str) -> None:
    creds = parse_authorization(authorization(SENDER, **REQUEST, ts=1_800_000_000, nonce=NONCE))

    verify(creds, **REQUEST, now=1_800_000_000 + 300)  # the edge is inside
    with pytest.raises(ApiError) as caught:
        verify(creds, **REQUEST, now=1_800_000_000 + skew)

    assert caught.value.code == "clock_skew"
    assert caught.value.message == (
        f"clock skew of 301 s exceeds the allowed 300 s (the request is {word} the server's clock)"
    )


def good_fields() -> dict[str, str]:
    sig = base64.b64encode(bytes(64)).decode()
    return {"key": SENDER.public().to_text(), "ts": "1800000000", "nonce": NONCE, "sig": sig}


def header_of(fields: dict[str, str], scheme: str = "TD1") -> str:
    return f"{scheme} " + ", ".join(f"{k}={v}" for k, v in fields.items())


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "has no Authorization header"),
        ("", "has no Authorization header"),
        (header_of(good_fields(), "Bearer"), "is not TD1"),
        (header_of({**good_fields(), "extra": "1"}), "unknown or repeated"),
        (header_of(good_fields()) + ", ts=1", "unknown or repeated"),
        (header_of({k: v for k, v in good_fields().items() if k != "nonce"}), "lacks nonce"),
        (header_of({**good_fields(), "key": "tds1qqqq"}), "authorization key"),
        (header_of({**good_fields(), "key": SENDER.to_text()}), "not a sender key"),
        (header_of({**good_fields(), "ts": "-5"}), "unix seconds"),
        (header_of({**good_fields(), "ts": "1.5"}), "unix seconds"),
        (header_of({**good_fields(), "nonce": "short"}), "22 to 64 base64url"),
        (header_of({**good_fields(), "nonce": NONCE + "+/"}), "22 to 64 base64url"),
        (header_of({**good_fields(), "sig": "AAAA"}), "64-byte signature"),
        (header_of({**good_fields(), "sig": "*" * 88}), "64-byte signature"),
    ],
    ids=[
        "absent", "empty", "scheme", "unknown-field", "repeated-field", "missing-field",
        "bad-key", "secret-key", "negative-ts", "float-ts", "short-nonce", "nonce-alphabet",
        "short-sig", "sig-alphabet",
    ],
)  # fmt: skip
def test_a_malformed_header_is_refused_naming_the_fault(header: str | None, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_authorization(header)

    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    assert message in caught.value.message


def test_a_nonce_is_accepted_once_within_the_window() -> None:
    cache = NonceCache(window=300)
    cache.remember(SENDER.public(), NONCE, 1000, now=1000.0)

    with pytest.raises(ApiError) as caught:
        cache.remember(SENDER.public(), NONCE, 1000, now=1299.0)
    assert (caught.value.status, caught.value.code) == (401, "replayed")

    cache.remember(SenderSecretKey(bytes([3] * 32)).public(), NONCE, 1000, now=1299.0)  # per key
    cache.remember(SENDER.public(), NONCE, 1301, now=1301.0)  # expired: the clock check refuses
    assert len(cache) == 2  # the other key's entry goes when the host's clock passes it:
    cache.expire(1301.0)
    assert (len(cache), cache.keys) == (1, 1)


def test_a_full_nonce_cache_refuses_rather_than_forgets() -> None:
    cache = NonceCache(window=300, capacity=2)
    cache.remember(SENDER.public(), "a" * 22, 1000, now=1000.0)
    cache.remember(SENDER.public(), "b" * 22, 1100, now=1000.0)

    with pytest.raises(ApiError) as caught:
        cache.remember(SENDER.public(), "c" * 22, 1000, now=1000.0)
    assert (caught.value.status, caught.value.code) == (503, "busy")

    assert caught.value.retry_after == 300  # when its oldest entry expires
    other = SenderSecretKey(bytes([3] * 32)).public()
    cache.remember(other, "c" * 22, 1000, now=1000.0)  # a full key crowds out no other

    cache.remember(SENDER.public(), "c" * 22, 1301, now=1301.0)  # the first one expired
    assert len(cache) == 3


def test_writers_read_readers_only_read_and_patterns_are_fnmatch() -> None:
    writer, reader = SENDER.public(), SenderSecretKey(bytes([4] * 32)).public()
    auth = Authorizer(writers=[("snds-*", writer)], readers=[("snds-202?", reader)])

    assert auth.may_write(writer, "snds-x")
    assert auth.may_read(writer, "snds-x")
    assert not auth.may_write(writer, "cnam")
    assert auth.may_read(reader, "snds-2026")
    assert not auth.may_write(reader, "snds-2026")
    assert not auth.may_read(reader, "snds-x")


def test_a_grant_reads_pattern_equals_public_key() -> None:
    assert parse_grant(f" snds-* = {SENDER.public().to_text()} ") == ("snds-*", SENDER.public())


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("snds-*", ConfigError, "is not JOBPATTERN=tds1"),
        (f"={SENDER.public().to_text()}", ConfigError, "is not JOBPATTERN=tds1"),
        (f"a/b={SENDER.public().to_text()}", ConfigError, "is not valid"),
        (f"snds-*={SENDER.to_text()}", ConfigError, "a sender secret key"),
        ("snds-*=tds1notakey", KeyFormatError, None),
    ],
    ids=["no-key", "empty-pattern", "slash", "secret-key", "mistyped-key"],
)
def test_a_bad_grant_is_a_config_error(
    text: str, error: type[Exception], message: str | None
) -> None:
    with pytest.raises(error, match=message):
        parse_grant(text)
