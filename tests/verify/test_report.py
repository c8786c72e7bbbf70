"""The report document: its schema, its hash and signature, and its HTML page."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]  # no stubs in the dev extra
import pytest

from tests.verify.conftest import Verify
from tests.verify.copies import Copy, flip_bit
from transferd.core.keys import SenderSecretKey
from transferd.errors import FormatError, IntegrityError, SignatureError
from transferd.report import html, seal
from transferd.report.model import FAILURES_PER_KIND, KINDS, Failure, Report

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "protocol" / "report.schema.json").read_text()
)
AUDITOR = SenderSecretKey.from_bytes(b"\x11" * 32)


def validate(document: dict[str, object]) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(document)


def test_a_passing_and_a_failing_report_follow_the_schema(copy: Copy, verify: Verify) -> None:
    validate(seal.seal(verify().to_json(), AUDITOR))
    flip_bit(copy.packs()[0])
    copy.objects()[-1].unlink()
    failing = seal.seal(verify().to_json(), None)
    validate(failing)
    assert failing["verdict"] == "altered"
    assert {f["check"] for f in failing["failures"]} >= {"objects-intact"}


def test_the_schema_knows_every_kind_and_check() -> None:
    assert set(SCHEMA["$defs"]["kind"]["enum"]) == set(KINDS)
    assert set(SCHEMA["$defs"]["check_id"]["enum"]) == {check for _, check in KINDS.values()}


def test_the_hash_covers_the_content_not_the_layout(copy: Copy, verify: Verify) -> None:
    document = seal.seal(verify().to_json(), AUDITOR)
    reloaded = seal.load(seal.dumps(document), "r.json")
    compact = seal.load(json.dumps(document), "r.json")
    assert seal.check(reloaded, "r.json", AUDITOR.public()).digest == document["report_sha256"]
    assert seal.check(compact, "r.json", None).signer == AUDITOR.public().to_text()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda d: d.update(verdict="altered", exit_code=21), IntegrityError),
        (lambda d: d["counts"].update(objects_read=0), IntegrityError),
        (lambda d: d.update(report_sha256="0" * 64), IntegrityError),
        (lambda d: d["signature"].update(ed25519=d["signature"]["ed25519"][::-1]), FormatError),
        (lambda d: d["signature"].update(key=SenderSecretKey.from_bytes(b"\2" * 32).public()
                                         .to_text()), SignatureError),
    ],
)  # fmt: skip
def test_a_changed_report_is_caught(
    copy: Copy, verify: Verify, change: object, error: type[Exception]
) -> None:
    document = seal.seal(verify().to_json(), AUDITOR)
    change(document)  # type: ignore[operator]
    with pytest.raises(error):
        seal.check(document, "r.json", None)


def test_other_documents_and_versions_are_refused() -> None:
    with pytest.raises(FormatError, match="not a transferd verify report"):
        seal.load('{"type": "something"}', "x.json")
    with pytest.raises(FormatError, match="schema version 2"):
        seal.load('{"type": "transferd-verify-report", "schema_version": 2}', "x.json")
    with pytest.raises(FormatError, match="duplicate key"):
        seal.load('{"type": "a", "type": "b"}', "x.json")


def small_report(**failures: int) -> Report:
    report = Report(job="j", store="/s", sender=AUDITOR.public().to_text(),
                    sender_fingerprint="SHA256:x", started="2026-11-22T21:00:00Z",
                    tool_version="0")  # fmt: skip
    for kind, n in failures.items():
        for i in range(n):
            report.fail(Failure(kind.replace("_", "-"), f"failure {i}"))
    return report


def test_the_verdict_follows_the_precedence_of_categories() -> None:
    assert small_report().verdict == "pass"
    assert small_report(unreadable=1, missing=1).exit_code == 20
    assert small_report(missing=3, extra=1).exit_code == 21
    assert small_report(altered=1, rollback=1).exit_code == 22
    assert small_report(source_only=1, unreadable=1).exit_code == 24
    assert small_report(unreadable=2).exit_code == 23


def test_failures_beyond_the_limit_are_counted_not_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("transferd.report.model.FAILURES_PER_KIND", 3)
    document = small_report(missing=5).to_json()
    assert FAILURES_PER_KIND == 100_000
    assert document["failure_counts"] == {"missing": 5}
    assert len(document["failures"]) == 3
    assert document["failures_omitted"] == {"missing": 2}


def test_the_html_page_escapes_everything_and_loads_nothing() -> None:
    report = small_report()
    report.fail(Failure("differs", "<script>alert(1)</script>", path="a<b>&c"))
    report.source = {"kind": "directory", "root": "/x/<img src=y>"}
    page = html.render(seal.seal(report.to_json(), None))
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;" in page
    assert "a&lt;b&gt;&amp;c" in page
    assert "default-src 'none'" in page
    for fetching in ("http://", "https://", "src=", "@import", "url("):
        assert fetching not in page.replace("/x/&lt;img src=y&gt;", "")
