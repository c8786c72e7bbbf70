"""Verify with the key: --deep opens every chunk, --against compares with the source."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.conftest import Run
from tests.verify.conftest import Verify
from tests.verify.copies import Copy, flip_bit
from transferd.core.keys import RecipientIdentity
from transferd.errors import NotARecipientError


def test_a_clean_copy_passes_deep_and_against(copy: Copy, verify: Verify) -> None:
    report = verify(identity=copy.identity, deep=True, against=str(copy.source))
    assert report.verdict == "pass", report.failures
    checks = {c["id"]: c["result"] for c in report.checks()}
    assert checks["chunks-open"] == checks["streams-intact"] == checks["catalog-totals"] == "pass"
    assert checks["matches-source"] == "pass"
    assert report.counts["chunks_opened"] == report.counts["chunks"] == len(copy.packs())
    assert report.counts["plain_bytes"] == sum(
        p.stat().st_size for p in copy.source.rglob("*") if p.is_file() and not p.is_symlink()
    )
    assert report.counts["source_entries"] == report.counts["entries"] == 6
    assert report.source is not None
    assert report.source["kind"] == "directory"


def test_deep_names_the_file_and_offset_of_a_damaged_chunk(copy: Copy, verify: Verify) -> None:
    big = max(copy.packs(), key=lambda p: p.stat().st_size)
    flip_bit(big, 200)
    report = verify(identity=copy.identity, deep=True)
    assert report.verdict == "altered"
    assert report.failure_counts == {"altered": 1, "chunk": 1}
    chunk = next(f for f in report.failures if f.kind == "chunk")
    assert chunk.path == "claims/part-2.csv"  # the largest file fills the largest pack
    assert chunk.offset == 0
    assert "failed" in chunk.message


def test_a_wrong_identity_fails_before_any_object_is_read(copy: Copy, verify: Verify) -> None:
    with pytest.raises(NotARecipientError):
        verify(identity=RecipientIdentity.from_bytes(b"\x03" * 32), deep=True)


def test_against_lists_every_difference_from_a_changed_source(copy: Copy, verify: Verify) -> None:
    src = copy.source
    (src / "README.txt").write_text("extract of 2026-12\n")  # same size, other content
    (src / "claims" / "part-1.csv").chmod(0o600)
    (src / "latest").unlink()
    (src / "latest").symlink_to("claims/part-0.csv")
    (src / "claims" / "part-0.csv").unlink()
    (src / "added.csv").write_bytes(b"1,2,3\n")
    os.mkfifo(src / "a-fifo")  # never copied: counted, not reported

    report = verify(identity=copy.identity, against=str(src))
    assert report.verdict == "differs"
    assert report.exit_code == 24
    found = {(f.kind, f.path) for f in report.failures}
    assert found == {
        ("differs", "README.txt"),
        ("differs", "claims/part-1.csv"),
        ("differs", "latest"),
        ("copy-only", "claims/part-0.csv"),
        ("source-only", "added.csv"),
    }
    messages = " ".join(f.message for f in report.failures)
    assert "its content in the source hashes to" in messages
    assert "has mode 0600 in the source, 0644 in the copy" in messages
    assert "links to claims/part-0.csv in the source, to claims/part-2.csv in the copy" in messages
    assert "FIFOs" in report.notes["matches-source"]
    checks = {c["id"]: c["result"] for c in report.checks()}
    assert "chunks-open" not in checks  # --against alone reads the catalog, not the chunks
    assert checks["catalog-totals"] == "pass"


def test_against_a_directory_replaced_by_a_file(copy: Copy, verify: Verify) -> None:
    claims = copy.source / "claims"
    for child in claims.iterdir():
        child.unlink()
    claims.rmdir()
    claims.write_bytes(b"not a directory")
    report = verify(identity=copy.identity, against=str(copy.source))
    kinds = {(f.kind, f.path) for f in report.failures}
    assert ("differs", "claims") in kinds
    assert {p for k, p in kinds if k == "copy-only"} == {
        "claims/part-0.csv", "claims/part-1.csv", "claims/part-2.csv",
    }  # fmt: skip


def test_cli_deep_and_against_need_an_identity(run: Run, copy: Copy) -> None:
    base = ["verify", "--store", str(copy.store_dir), "--job", copy.job,
            "--sender", copy.sender.to_text(), "--seen-state", "s.json"]  # fmt: skip
    result = run(*base, "--deep")
    assert result.code == 2
    assert "give --identity FILE" in result.stderr


def test_cli_deep_against_passes_then_names_a_changed_file(
    run: Run, copy: Copy, tmp_path: Path
) -> None:
    key = tmp_path / "owner.key"
    key.write_text(copy.identity.to_text() + "\n")
    key.chmod(0o600)
    base = ["verify", "--store", str(copy.store_dir), "--job", copy.job,
            "--sender", copy.sender.to_text(), "--seen-state", "s.json",
            "--deep", "--identity", str(key), "--against", str(copy.source)]  # fmt: skip
    result = run(*base)
    assert result.code == 0, result.stderr
    assert "4 chunks opened" in result.stdout
    assert "6 entries compared" in result.stdout
    (copy.source / "claims" / "part-1.csv").write_bytes(b"truncated")
    result = run(*base)
    assert result.code == 24
    assert "claims/part-1.csv has 9 bytes in the source" in result.stdout
