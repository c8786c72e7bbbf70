"""core/copy.py: the copy secret, the keys it derives, and the signed copy manifest."""

from __future__ import annotations

import pytest

from transferd.core import copy as core_copy
from transferd.core.copy import (
    CopyJobRef,
    CopyManifestBody,
    CopySecret,
    parse_copy_secret,
    parse_copy_secret_file,
    render_copy_secret_file,
)
from transferd.core.keys import SenderSecretKey
from transferd.errors import FormatError, KeyFormatError, RollbackError, SignatureError

SECRET = CopySecret(bytes(range(32)))
SENDER = SenderSecretKey(bytes(range(1, 33)))
OTHER = SenderSecretKey(bytes(range(2, 34)))


def body(sequence: int = 1, previous: str | None = None, **jobs: int | None) -> CopyManifestBody:
    refs = tuple(
        CopyJobRef(name, seq, None if seq is None else f"{seq:064x}")
        for name, seq in sorted(jobs.items())
    )
    return CopyManifestBody(
        copy="snds-2026", copy_id=SECRET.copy_id("snds-2026"), sequence=sequence,
        created="2026-11-22T21:00:00Z", previous=previous, sender=SENDER.public().to_text(),
        jobs=refs,
    )  # fmt: skip


def test_every_job_key_and_id_derives_from_the_secret_and_the_name_alone() -> None:
    again = CopySecret(bytes(range(32)))
    assert SECRET.job_key("dcir").key == again.job_key("dcir").key
    assert SECRET.job_key("dcir").key != SECRET.job_key("pmsi").key
    assert SECRET.job_id("dcir") == again.job_id("dcir")
    assert len(SECRET.job_id("dcir")) == 32
    assert SECRET.job_id("dcir") != SECRET.copy_id("dcir")
    assert SECRET.job_key("dcir").key != CopySecret(bytes(32)).job_key("dcir").key
    assert bytes(range(32)).hex() not in repr(SECRET)


def test_the_secret_text_round_trips_and_refuses_what_it_is_not() -> None:
    text = SECRET.to_text()
    assert text.startswith("TD-SECRET-COPY-1")
    assert parse_copy_secret(text) == SECRET
    file_text = render_copy_secret_file(SECRET, "snds-2026", "2026-11-22T21:00:00Z")
    assert parse_copy_secret_file(file_text) == SECRET
    with pytest.raises(KeyFormatError, match="upper case"):
        parse_copy_secret(text.lower())
    with pytest.raises(KeyFormatError, match="not a copy secret"):
        parse_copy_secret(SENDER.to_text())
    with pytest.raises(KeyFormatError, match="exactly one"):
        parse_copy_secret_file("# nothing\n")


def test_a_copy_manifest_signs_parses_and_verifies() -> None:
    data = core_copy.sign(body(dcir=3, pmsi=None), SENDER)
    signed = core_copy.verify(data, SENDER.public())
    assert signed.body == body(dcir=3, pmsi=None)
    assert signed.body.job("dcir") == CopyJobRef("dcir", 3, f"{3:064x}")
    assert data.startswith(b"transferd-copy v1\n")
    with pytest.raises(SignatureError, match="expected"):
        core_copy.verify(data, OTHER.public())
    tampered = data.replace(b'"sequence":3', b'"sequence":4')
    with pytest.raises(SignatureError, match="invalid"):
        core_copy.parse(tampered)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ((b"transferd-copy v1", b"transferd-copy v2"), "unsupported format version"),
        ((b"transferd-copy v1", b"transferd-manifest v1"), "bad first line"),
        ((b'"format":1', b'"format":2'), "unsupported format version"),
        ((b'"previous":null', b'"previous":"00"'), "previous"),
        ((b"2026-11-22T21", b"2026-02-30T21"), "created must be RFC 3339"),
    ],
)
def test_malformed_copy_manifests_are_refused(edit: tuple[bytes, bytes], message: str) -> None:
    data = core_copy.sign(body(dcir=1), SENDER).replace(*edit)
    with pytest.raises(FormatError, match=message):
        core_copy.parse(data)


def test_jobs_must_be_in_order_each_once_with_both_fields_or_none() -> None:
    good = body(a=1, b=None).to_json()
    for jobs in (
        [good["jobs"][1], good["jobs"][0]],
        [good["jobs"][0], good["jobs"][0]],
        [{"job": "a", "sequence": 1, "sha256": None}],
    ):
        with pytest.raises(FormatError):
            CopyManifestBody.from_json({**good, "jobs": jobs})


def test_succession_follows_the_chain() -> None:
    first = core_copy.parse(core_copy.sign(body(1, None, a=None), SENDER))
    second = core_copy.parse(core_copy.sign(body(2, first.digest, a=1), SENDER))
    core_copy.check_succession(None, first)
    core_copy.check_succession(first, second)
    with pytest.raises(RollbackError):
        core_copy.check_succession(None, second)
    forged = core_copy.parse(core_copy.sign(body(2, "0" * 64, a=1), SENDER))
    with pytest.raises(RollbackError, match="does not follow"):
        core_copy.check_succession(first, forged)
