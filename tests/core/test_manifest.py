"""Manifests and canonical JSON: round trips, every field check, any flipped bit detected."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.strategies import (
    FEW,
    IDENTITY,
    JOB_KEY,
    OTHER_SENDER,
    SENDER,
    SETTINGS,
    fixed,
    flip,
    manifest_bodies,
)
from transferd.core import canonical
from transferd.core.jobkey import wrap
from transferd.core.manifest import (
    ManifestBody,
    Totals,
    check_job_name,
    check_not_rolled_back,
    check_succession,
    manifest_name,
    parse,
    sign,
    verify,
)
from transferd.core.objectlist import ObjectRef
from transferd.errors import FormatError, RollbackError, SignatureError, UnsupportedVersionError


def _body(**changes: Any) -> ManifestBody:
    base = ManifestBody(
        job="snds", job_id="ab" * 16, sequence=1, created="2026-11-22T21:00:00Z", previous=None,
        sender=SENDER.public().to_text(),
        recipients=(wrap(JOB_KEY, IDENTITY.public(), fixed("e")),), key_check=JOB_KEY.key_check,
        object_lists=(ObjectRef(fixed("ol"), 49),), catalog=(ObjectRef(fixed("cs"), 300),),
        totals=Totals(1, 561),
    )  # fmt: skip
    return replace(base, **changes)


FIRST = sign(_body(), SENDER)


@FEW
@given(manifest_bodies())
def test_sign_then_parse_round_trips(body: ManifestBody) -> None:
    raw = sign(body, SENDER)
    parsed = verify(raw, SENDER.public())
    assert parsed.body == body
    assert parsed.raw == raw
    assert ManifestBody.from_json(body.to_json()) == body
    assert raw.count(b"\n") == 3


@SETTINGS
@given(st.integers(0, len(FIRST) * 8 - 1))
def test_a_flipped_bit_anywhere_is_detected(bit: int) -> None:
    with pytest.raises((FormatError, SignatureError)):
        verify(flip(FIRST, bit), SENDER.public())


def test_sign_refuses_a_body_naming_another_sender() -> None:
    with pytest.raises(ValueError, match="names another sender"):
        sign(_body(), OTHER_SENDER)


def test_another_signer_than_expected_is_refused() -> None:
    raw = sign(_body(sender=OTHER_SENDER.public().to_text()), OTHER_SENDER)
    assert parse(raw).body.sender == OTHER_SENDER.public().to_text()
    with pytest.raises(SignatureError, match=r"manifest signed by tds1\S+, expected tds1"):
        verify(raw, SENDER.public())


def _resign(body_json: Any, *, first: bytes = b"transferd-manifest v1\n") -> bytes:
    line = json.dumps(body_json, sort_keys=True, separators=(",", ":")).encode()
    signed = first + line + b"\n"
    sig = base64.b64encode(SENDER.sign(signed)).decode()
    return signed + f"sig {SENDER.public().to_text()} {sig}\n".encode()


J = _body().to_json()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1], "manifest body is not a JSON object"),
        (J | {"extra": 1}, r"fields wrong: missing \[\], extra \['extra'\]"),
        ({k: v for k, v in J.items() if k != "job"}, r"missing \['job'\]"),
        (J | {"job_id": "AB" * 16}, "job_id must be 32 lowercase hex"),
        (J | {"sequence": 0}, "sequence must be a positive integer"),
        (J | {"sequence": True}, "sequence must be a positive integer"),
        (J | {"created": "2026-11-22 21:00:00Z"}, "created must be RFC 3339 UTC"),
        (J | {"created": "2026-13-22T21:00:00Z"}, "created must be RFC 3339 UTC"),
        (J | {"created": "2026-02-30T21:00:00Z"}, "created must be RFC 3339 UTC"),
        (J | {"created": "2026-11-22T24:00:00Z"}, "created must be RFC 3339 UTC"),
        (J | {"sequence": 2}, "previous must be null at sequence 1"),
        (J | {"previous": 7}, "previous must be null at sequence 1"),
        (J | {"sequence": 2, "previous": "AB" * 32}, "else 64 hex digits"),
        (J | {"key_check": base64.b64encode(bytes(15)).decode()}, "key_check must be 16 bytes"),
        (J | {"catalog": {}}, "manifest catalog must be a list"),
        (J | {"recipients": []}, "manifest has no recipients"),
        (J | {"recipients": J["recipients"] * 2}, "two stanzas for one recipient"),
        (J | {"catalog": []}, "manifest names no catalog segment"),
        (J | {"totals": {"objects": 1}}, "totals must be"),
        (J | {"totals": {"objects": -1, "stored_bytes": 0}}, "totals must be"),
        (J | {"totals": []}, "totals must be"),
        (J | {"sender": IDENTITY.public().to_text()}, "sender must be a sender public key"),
        (J | {"sender": 5}, "sender must be a sender public key"),
        (J | {"sender": "tds1qqqqqqqqqqqq"}, "manifest sender: key tds1qqqqqqqq… is mistyped"),
        (J | {"job": "Snds"}, "job name 'Snds' is not valid"),
        (J | {"recipients": [{"type": "x"}]}, "unknown recipient stanza type"),
        (J | {"object_lists": [{"sha256": "x"}]}, "object list must have exactly sha256"),
    ],
)
def test_body_fields_are_checked(body: Any, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        ManifestBody.from_json(body)
    with pytest.raises(FormatError, match=message):
        parse(_resign(body))


def test_versions_are_refused_by_number() -> None:
    with pytest.raises(UnsupportedVersionError, match="unsupported format version 2 in manifest"):
        ManifestBody.from_json(J | {"format": 2})
    with pytest.raises(UnsupportedVersionError, match="version v2 in manifest"):
        parse(FIRST.replace(b"manifest v1", b"manifest v2", 1))


SIG_AT = FIRST.index(b"\nsig ") + 1


@pytest.mark.parametrize(
    ("raw", "error", "message"),
    [
        (bytes(4 * 1024 * 1024 + 1), FormatError, "exceeds the limit"),
        (b"transferd-manifest v1", FormatError, "bad first line"),
        (b"hello\n" + FIRST, FormatError, "bad first line"),
        (FIRST + b"\n", FormatError, "exactly three lines"),
        (FIRST[:SIG_AT] + b"sig x\n", FormatError, "must be: sig <key> <signature>"),
        (FIRST[:SIG_AT] + b"gis " + FIRST[SIG_AT + 4 :], FormatError, "sig <key> <signature>"),
        (FIRST[:-4] + bytes([FIRST[-4] + 1]) + b"==\n", FormatError, "not canonical base64"),
        (FIRST[:-3] + b"\n", FormatError, "signature is not valid base64"),
        (FIRST[: FIRST.rindex(b" ") + 1] + base64.b64encode(bytes(63)) + b"\n", FormatError,
         "signature must be 64 bytes"),
        (FIRST.replace(b"\nsig tds1", b"\nsig tds2", 1), SignatureError, "names another key"),
    ],
)  # fmt: skip
def test_layout_faults_are_named(raw: bytes, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        parse(raw)


def test_an_altered_body_fails_its_signature() -> None:
    with pytest.raises(SignatureError, match="is invalid: the manifest was altered"):
        parse(FIRST.replace(b'"objects":1', b'"objects":2'))


def test_history_is_a_chain() -> None:
    first = verify(FIRST, SENDER.public())
    second = verify(sign(_body(sequence=2, previous=first.digest), SENDER), SENDER.public())
    check_succession(None, first)
    check_succession(first, second)
    check_not_rolled_back(second, 2)
    check_not_rolled_back(second, None)
    with pytest.raises(RollbackError, match="manifest 2 of job snds has no predecessor"):
        check_succession(None, second)
    with pytest.raises(RollbackError, match="manifest 2 of job snds does not follow manifest 2"):
        check_succession(second, second)
    other = verify(sign(_body(sequence=2, previous=first.digest, job_id="cd" * 16), SENDER),
                   SENDER.public())  # fmt: skip
    with pytest.raises(RollbackError, match="belongs to another job than 1"):
        check_succession(first, other)
    rekeyed = verify(sign(_body(sequence=2, previous=first.digest, key_check=bytes(16)), SENDER),
                     SENDER.public())  # fmt: skip
    with pytest.raises(RollbackError, match="has another key_check than manifest 1"):
        check_succession(first, rekeyed)
    with pytest.raises(RollbackError, match="is at manifest 1 but manifest 2 was seen before"):
        check_not_rolled_back(first, 2)


def test_names_and_job_names() -> None:
    assert manifest_name(7) == "00000000000000000007"
    assert check_job_name("a" * 64) == "a" * 64
    for bad in ("", "a" * 65, "-a", "a/b", "A", 5):
        with pytest.raises(FormatError, match="is not valid"):
            check_job_name(bad)  # type: ignore[arg-type]


# --- canonical JSON ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@SETTINGS
@given(json_values)
def test_canonical_json_round_trips(value: Any) -> None:
    raw = canonical.dumps(value)
    assert raw.isascii()
    assert canonical.loads(raw, "value") == value
    assert canonical.dumps(value, checked=False) == raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"a": 1}', "is not in canonical form"),
        (b'{"b":1,"a":2}', "is not in canonical form"),
        (b'{"a":1,"a":1}', "duplicate key 'a'"),
        (b"1.5", "non-integer number 1.5"),
        (b"1e3", "non-integer number 1e3"),
        (b'{"a":NaN}', "non-integer number NaN"),
        (b"[-Infinity]", "non-integer number -Infinity"),
        (b'["a\\ud800"]', "holds an unpaired surrogate"),
        (b'{"\\udfff":1}', "holds an unpaired surrogate"),
        ('"\u00e9"'.encode(), "is not valid canonical JSON"),
        (b"[1,", "is not valid canonical JSON"),
        (b"9223372036854775808", "integer 9223372036854775808 is beyond int64"),
        (b'{"a":[-9223372036854775809]}', "integer -9223372036854775809 is beyond int64"),
        (b"1" * 5000, "is not valid canonical JSON"),
    ],
)
def test_non_canonical_json_is_refused(raw: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        canonical.loads(raw, "value")


def test_paired_surrogates_are_text() -> None:
    assert canonical.loads(b'"\\ud83d\\ude00"', "value") == "\U0001f600"


def test_floats_are_never_written() -> None:
    for value in (1.0, [1.0], {"a": {"b": 0.5}}, (2.0,)):
        with pytest.raises(TypeError, match="integers only"):
            canonical.dumps(value)


def test_integers_are_within_int64() -> None:
    assert canonical.loads(b"[-9223372036854775808,9223372036854775807]", "v") == [
        -(2**63),
        2**63 - 1,
    ]
    for value in (2**63, [-(2**63) - 1], {"a": {"b": 2**64}}):
        with pytest.raises(ValueError, match="within int64"):
            canonical.dumps(value)
