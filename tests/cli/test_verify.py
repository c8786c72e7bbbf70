"""``transferd verify`` and ``transferd report check`` as an auditor runs them: real copies in a
LocalStore, the real command in a child process, its exit code, output and report files."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import REPO, Run
from tests.verify.copies import Copy, flip_bit, make_copy, resign
from transferd.core.keys import SenderSecretKey


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Copy:
    return make_copy(tmp_path_factory.mktemp("cli-pristine"))


@pytest.fixture
def copy(pristine: Copy, tmp_path: Path) -> Copy:
    shutil.copytree(pristine.store_dir, tmp_path / "store")
    return Copy(tmp_path, tmp_path / "store", pristine.source, pristine.state,
                pristine.sender_secret, pristine.identity)  # fmt: skip


def verify(run: Run, copy: Copy, *extra: str) -> tuple[int, str, str]:
    result = run(
        "verify", "--store", str(copy.store_dir), "--job", copy.job,
        "--sender", copy.sender.to_text(), "--seen-state", "seen.json", *extra,
    )  # fmt: skip
    return result.code, result.stdout, result.stderr


def test_a_clean_copy_passes_and_prints_the_rates(run: Run, copy: Copy, tmp_path: Path) -> None:
    code, out, err = verify(run, copy, "--report-json", "r.json", "--report-html", "r.html")
    assert (code, err) == (0, "")
    assert f"verify job {copy.job} at {copy.store_dir}: PASS" in out
    assert "objects/s" in out
    assert "MB/s" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["verdict"] == "pass"
    assert report["exit_code"] == 0
    assert "PASS" in (tmp_path / "r.html").read_text()
    assert stat.S_IMODE((tmp_path / "seen.json").stat().st_mode) == 0o600


def test_the_sender_key_may_be_given_as_a_file(run: Run, copy: Copy, tmp_path: Path) -> None:
    (tmp_path / "sender.pub").write_text(f"# the sender\n{copy.sender.to_text()}\n")
    result = run("verify", "--store", str(copy.store_dir), "--job", copy.job,
                 "--sender", "sender.pub", "--seen-state", "seen.json")  # fmt: skip
    assert result.code == 0, result.stderr


@pytest.mark.parametrize(
    ("damage", "code", "words"),
    [
        ("flip", 21, "was altered: its bytes hash to"),
        ("delete", 20, "is not in the store"),
        ("truncate", 20, "is truncated"),
        ("swap", 21, "holds the bytes of pack"),
        ("extra", 21, "no trusted manifest names it"),
        ("other-key", 22, "is signed by tds1"),
    ],
)
def test_each_damage_is_named_with_its_exit_code(
    run: Run, copy: Copy, damage: str, code: int, words: str
) -> None:
    packs = copy.packs()
    if damage == "flip":
        flip_bit(packs[0])
    elif damage == "delete":
        packs[0].unlink()
    elif damage == "truncate":
        os.truncate(packs[0], 10)
    elif damage == "swap":
        packs[0].rename(copy.root / "x")
        packs[1].rename(packs[0])
        (copy.root / "x").rename(packs[1])
    elif damage == "extra":
        extra = copy.job_dir / "objects" / "ff" / ("f" * 64)
        extra.parent.mkdir(exist_ok=True)
        extra.write_bytes(b"planted")
    else:
        resign(copy, 1, SenderSecretKey.from_bytes(b"\x05" * 32))
    result_code, out, err = verify(run, copy)
    assert result_code == code, err
    assert words in out
    assert err.startswith("transferd: error: verification failed: job snds-extract: ")


def test_a_rollback_after_a_seen_manifest_exits_22(run: Run, tmp_path: Path) -> None:
    copy = make_copy(tmp_path / "c")
    (copy.source / "more.csv").write_bytes(os.urandom(4000))
    copy.send()
    assert verify(run, copy)[0] == 0
    copy.manifest(2).unlink()
    code, out, err = verify(run, copy, "--json")
    assert code == 22
    report = json.loads(out)
    assert report["verdict"] == "untrusted"
    assert any("manifest 2 was seen before" in f["message"] for f in report["failures"])
    assert json.loads(err)["exit_code"] == 22


def test_an_unreadable_object_exits_23(run: Run, copy: Copy) -> None:
    pack = copy.packs()[0]
    pack.unlink()
    pack.mkdir()
    code, out, _ = verify(run, copy)
    assert code == 23
    assert "could not be read" in out


def test_a_missing_store_or_job_is_not_found(run: Run, copy: Copy, tmp_path: Path) -> None:
    result = run("verify", "--store", "nowhere", "--job", copy.job,
                 "--sender", copy.sender.to_text(), "--seen-state", "s.json")  # fmt: skip
    assert result.code == 10
    assert not (tmp_path / "nowhere").exists()  # a verifier never creates a store
    result = run("verify", "--store", str(copy.store_dir), "--job", "other",
                 "--sender", copy.sender.to_text(), "--seen-state", "s.json")  # fmt: skip
    assert result.code == 10
    assert "job other has no manifest" in result.stderr


def test_the_seen_state_defaults_to_the_state_dir(copy: Copy, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TRANSFERD_STATE": str(tmp_path / "st")}
    proc = subprocess.run(
        [sys.executable, "-m", "transferd", "verify", "--store", str(copy.store_dir),
         "--job", copy.job, "--sender", copy.sender.to_text()],
        env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    seen = tmp_path / "st" / "verify-seen.json"
    assert stat.S_IMODE(seen.stat().st_mode) == 0o600


def test_a_signed_report_checks_and_a_changed_one_does_not(
    run: Run, copy: Copy, tmp_path: Path
) -> None:
    auditor = run("keygen", "--kind", "sender", "-o", "auditor.key").stdout.strip()
    flip_bit(copy.packs()[0])
    code, _, _ = verify(run, copy, "--report-json", "r.json", "--sign-report", "auditor.key")
    assert code == 21
    good = run("report", "check", "r.json", "--signer", auditor)
    assert good.code == 0, good.stderr
    assert "intact" in good.stdout
    assert f"signed by {auditor}" in good.stdout
    assert "verdict altered" in good.stdout

    other = SenderSecretKey.from_bytes(b"\x09" * 32).public().to_text()
    wrong = run("report", "check", "r.json", "--signer", other)
    assert wrong.code == 13
    assert f"expected {other}" in wrong.stderr

    report = json.loads((tmp_path / "r.json").read_text())
    report["verdict"] = "pass"
    (tmp_path / "forged.json").write_text(json.dumps(report))
    forged = run("report", "check", "forged.json")
    assert forged.code == 13
    assert "was changed after it was written" in forged.stderr


def test_an_unsigned_report_fails_when_a_signer_is_required(run: Run, copy: Copy) -> None:
    assert verify(run, copy, "--report-json", "r.json")[0] == 0
    assert run("report", "check", "r.json").code == 0
    signer = SenderSecretKey.from_bytes(b"\x09" * 32).public().to_text()
    result = run("report", "check", "r.json", "--signer", signer)
    assert result.code == 13
    assert "is not signed" in result.stderr
