"""Verify without the key, against real copies in a LocalStore: each kind of damage is named
and gives its verdict; a clean copy passes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from tests.verify.conftest import Verify
from tests.verify.copies import Copy, flip_bit, make_copy, resign
from transferd.core.keys import SenderSecretKey
from transferd.errors import ConfigError, JobNotFoundError
from transferd.report.model import Report
from transferd.stores.local import LocalStore
from transferd.stores.memory import MemoryStore
from transferd.verify.run import VerifyOptions, verify_copy
from transferd.verify.seen import SeenState


def kinds(report: Report) -> dict[str, int]:
    return dict(report.failure_counts)


def failed_objects(report: Report, kind: str) -> set[str | None]:
    return {f.object for f in report.failures if f.kind == kind}


def test_a_clean_copy_passes(copy: Copy, verify: Verify) -> None:
    report = verify()
    assert report.verdict == "pass", report.failures
    assert report.exit_code == 0
    objects = len(copy.objects())
    assert report.counts["objects_listed"] == report.counts["objects_referenced"] == objects
    assert report.counts["objects_read"] == objects
    assert report.counts["bytes_read"] == sum(p.stat().st_size for p in copy.objects())
    assert {c["result"] for c in report.checks()} == {"pass"}
    assert report.job_id is not None
    assert report.throughput["bytes_per_second"] > 0


def test_one_bit_flipped_in_a_pack_is_named_altered(copy: Copy, verify: Verify) -> None:
    pack = copy.packs()[1]
    flip_bit(pack, 1000)
    report = verify()
    assert report.verdict == "altered"
    assert report.exit_code == 21
    assert kinds(report) == {"altered": 1}
    failure = report.failures[0]
    assert failure.object == pack.name
    assert failure.object_kind == "pack"
    assert failure.actual is not None
    assert failure.actual["size"] == pack.stat().st_size


def test_a_deleted_object_is_named_missing(copy: Copy, verify: Verify) -> None:
    pack = copy.packs()[0]
    pack.unlink()
    report = verify()
    assert report.verdict == "incomplete"
    assert report.exit_code == 20
    assert kinds(report) == {"missing": 1}
    assert failed_objects(report, "missing") == {pack.name}


def test_a_truncated_object_is_named_truncated(copy: Copy, verify: Verify) -> None:
    pack = copy.packs()[2]
    size = pack.stat().st_size
    os.truncate(pack, size - 17)
    report = verify()
    assert report.verdict == "incomplete"
    assert report.exit_code == 20
    assert kinds(report) == {"truncated": 1}
    assert f"{size - 17} of {size} bytes" in report.failures[0].message


def test_two_swapped_objects_are_two_altered_ones(copy: Copy, verify: Verify) -> None:
    a, b = copy.packs()[:2]
    tmp = a.with_name("swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    report = verify()
    assert report.verdict == "altered"
    assert kinds(report) == {"altered": 2}
    assert failed_objects(report, "altered") == {a.name, b.name}
    messages = {f.object: f.message for f in report.failures}
    assert f"holds the bytes of pack {b.name}" in messages[a.name]
    assert f"holds the bytes of pack {a.name}" in messages[b.name]


def test_an_extra_object_is_named(copy: Copy, verify: Verify) -> None:
    planted = copy.packs()[0].read_bytes() + b"appended"
    name = hashlib.sha256(planted).hexdigest()
    path = copy.job_dir / "objects" / name[:2] / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(planted)
    report = verify()
    assert report.verdict == "altered"
    assert report.exit_code == 21
    assert kinds(report) == {"extra": 1}
    assert failed_objects(report, "extra") == {name}


def test_an_object_list_lost_still_checks_every_object_by_its_name(
    copy: Copy, verify: Verify
) -> None:
    lists = [p for p in copy.objects() if p.read_bytes()[:4] == b"TDOL"]
    assert len(lists) == 1
    lists[0].unlink()
    flip_bit(copy.packs()[0])
    report = verify()
    assert kinds(report) == {"missing": 1, "altered": 1}
    assert report.verdict == "altered"
    checks = {c["id"]: c["result"] for c in report.checks()}
    assert checks["no-extra-objects"] == "skipped"
    assert checks["manifest-totals"] == "skipped"


def test_an_unreadable_object_is_could_not_read(copy: Copy, verify: Verify) -> None:
    pack = copy.packs()[0]
    pack.unlink()
    pack.mkdir()  # listed under its name, but reading it fails (EISDIR), even as root
    report = verify()
    assert report.verdict == "unreadable"
    assert report.exit_code == 23
    assert kinds(report) == {"unreadable": 1}


def test_an_older_manifest_put_in_place_of_the_newest_is_a_rollback(tmp_path: Path) -> None:
    copy = make_copy(tmp_path)
    (copy.source / "claims" / "part-3.csv").write_bytes(os.urandom(5000))
    copy.send()
    newest = copy.manifest(2)
    newest.unlink()
    newest.write_bytes(copy.manifest(1).read_bytes())
    report = run(copy, tmp_path / "seen.json")
    assert report.verdict == "untrusted"
    assert report.exit_code == 22
    assert kinds(report).get("rollback") == 1
    assert "stored as 2" in next(f.message for f in report.failures if f.kind == "rollback")


def test_a_removed_newest_manifest_is_a_rollback_once_it_was_seen(tmp_path: Path) -> None:
    copy = make_copy(tmp_path)
    (copy.source / "new.csv").write_bytes(os.urandom(5000))
    copy.send()
    seen = tmp_path / "seen.json"
    assert run(copy, seen).verdict == "pass"
    assert stat.S_IMODE(seen.stat().st_mode) == 0o600
    recorded = json.loads(seen.read_text())["seen"]
    assert [(e["job"], e["sequence"]) for e in recorded] == [(copy.job, 2)]
    copy.manifest(2).unlink()
    report = run(copy, seen)
    assert report.verdict == "untrusted"
    assert report.exit_code == 22
    rollback = [f.message for f in report.failures if f.kind == "rollback"]
    assert len(rollback) == 1
    assert "manifest 2 was seen before" in rollback[0]
    # The seen state keeps the newest sequence: the rollback is reported again next time.
    assert run(copy, seen).verdict == "untrusted"
    # Without the memory of manifest 2, the shorter chain verifies: that is why it is kept.
    assert run(copy, tmp_path / "fresh.json").verdict == "altered"  # 2's objects are extra


def test_a_manifest_replaced_under_a_seen_number_is_caught(tmp_path: Path) -> None:
    copy = make_copy(tmp_path)
    seen = tmp_path / "seen.json"
    assert run(copy, seen).verdict == "pass"
    state = json.loads(seen.read_text())
    state["seen"][0]["sha256"] = "0" * 64
    seen.write_text(json.dumps(state))
    report = run(copy, seen)
    assert report.verdict == "untrusted"
    assert "a manifest was replaced" in report.failures[0].message


def test_a_manifest_signed_by_another_key_is_untrusted(copy: Copy, verify: Verify) -> None:
    resign(copy, 1, SenderSecretKey.from_bytes(b"\x07" * 32))
    report = verify()
    assert report.verdict == "untrusted"
    assert report.exit_code == 22
    assert kinds(report)["signature"] == 1
    assert f"expected {copy.sender.to_text()}" in report.failures[0].message
    # Its objects are vouched for by no trusted manifest: extra, but the signature decides.
    assert kinds(report)["extra"] == len(copy.objects())


def test_a_manifest_with_an_altered_body_fails_its_signature(copy: Copy, verify: Verify) -> None:
    path = copy.manifest(1)
    data = path.read_bytes().replace(b'"created":"20', b'"created":"19', 1)
    path.unlink()
    path.write_bytes(data)
    report = verify()
    assert report.verdict == "untrusted"
    assert "signature" in kinds(report)
    assert "invalid" in report.failures[0].message


def test_a_missing_middle_manifest_breaks_the_chain(tmp_path: Path) -> None:
    copy = make_copy(tmp_path)
    for n in range(2):
        (copy.source / f"more-{n}.csv").write_bytes(os.urandom(3000))
        copy.send()
    copy.manifest(2).unlink()
    report = run(copy, None)
    assert report.verdict == "untrusted"
    assert kinds(report)["manifest-missing"] == 1
    assert "manifest 2 of job" in report.failures[0].message


def test_every_manifest_of_a_job_is_checked_and_counted(tmp_path: Path) -> None:
    copy = make_copy(tmp_path)
    (copy.source / "more.csv").write_bytes(os.urandom(3000))
    copy.send()
    report = run(copy, tmp_path / "seen.json")
    assert report.verdict == "pass", report.failures
    assert [m["sequence"] for m in report.manifests] == [1, 2]
    assert all(m["trusted"] for m in report.manifests)
    assert report.counts["objects_referenced"] == len(copy.objects())


def test_a_job_with_nothing_stored_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(JobNotFoundError):
        asyncio.run(
            verify_copy(MemoryStore(), "nothing", SenderSecretKey.from_bytes(b"\1" * 32).public())
        )


def test_a_damaged_seen_state_is_refused_not_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "seen.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="is damaged"):
        SeenState(path)


def run(copy: Copy, seen: Path | None) -> Report:
    async def main() -> Report:
        options = VerifyOptions(seen=SeenState(seen) if seen else None, workers=2)
        return await verify_copy(LocalStore(copy.store_dir), copy.job, copy.sender, options)

    return asyncio.run(main())
