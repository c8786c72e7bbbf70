"""Post-quantum recipients as a user meets them: a fresh identity is hybrid, a copy sent to it
restores with transferd and with the reference decoder, a classic recipient draws a warning (or,
with --require-pq, a refusal), and rekey moves a classic copy to a hybrid recipient alone without
re-sending a byte. Every step runs the real ``transferd`` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import Result, Run
from transferd.core.keys import parse_key_file

DECODER = Path(__file__).resolve().parents[2] / "protocol" / "reference" / "decode.py"
FILES = {"actes.csv": b"id;acte\n" + b"7;consultation\n" * 3000, "lisez-moi.txt": b"copie test\n"}


@pytest.fixture
def setup(run: Run, tmp_path: Path) -> dict[str, str]:
    """Key files and a source tree in tmp_path; returns the public keys."""
    owner = run("keygen", "--kind", "recipient", "-o", "owner.key")
    old = run("keygen", "--kind", "recipient", "--classic", "-o", "old.key")
    sender = run("keygen", "--kind", "sender", "-o", "sender.key")
    assert (owner.code, old.code, sender.code) == (0, 0, 0)
    (tmp_path / "src").mkdir()
    for name, content in FILES.items():
        (tmp_path / "src" / name).write_bytes(content)
    return {"owner": owner.stdout.strip(), "old": old.stdout.strip(),
            "sender": sender.stdout.strip()}  # fmt: skip


def _send(run: Run, job: str, *recipient_args: str) -> Result:
    return run("send", "src", "--to", "store", "--job", job, "--sender-key", "sender.key",
               "--state", "state", "--progress", "never", *recipient_args)  # fmt: skip


def _restore(run: Run, job: str, identity: str, out: str, sender: str) -> Result:
    return run("restore", "--store", "store", "--job", job, "--identity", identity,
               "--sender", sender, "--out", out)  # fmt: skip


def _restored(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in root.iterdir()}


def _objects(store: Path, job: str) -> set[str]:
    return {p.name for p in (store / "jobs" / job / "objects").rglob("*") if p.is_file()}


def test_a_fresh_identity_is_hybrid(setup: dict[str, str], tmp_path: Path) -> None:
    identity = parse_key_file((tmp_path / "owner.key").read_text())
    assert setup["owner"].startswith("tdrpq1")
    assert len(setup["owner"]) == 1958
    assert identity.public().to_text() == setup["owner"]
    assert setup["old"].startswith("tdr1")


def test_a_copy_to_a_hybrid_identity_restores_with_transferd_and_the_reference_decoder(
    run: Run, setup: dict[str, str], tmp_path: Path
) -> None:
    sent = _send(run, "pq", "-r", setup["owner"], "--require-pq")
    assert sent.code == 0, sent.stderr
    assert "warning" not in sent.stderr

    restored = _restore(run, "pq", "owner.key", "out", setup["sender"])
    assert restored.code == 0, restored.stderr
    assert _restored(tmp_path / "out") == FILES

    decoded = subprocess.run(
        [sys.executable, str(DECODER), str(tmp_path / "store"), "pq",
         str(tmp_path / "owner.key"), str(tmp_path / "ref"), "--sender", setup["sender"]],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert decoded.returncode == 0, decoded.stderr
    assert _restored(tmp_path / "ref") == FILES


def test_a_classic_recipient_is_warned_about_and_refused_with_require_pq(
    run: Run, setup: dict[str, str], tmp_path: Path
) -> None:
    refused = _send(run, "strict", "-r", setup["owner"], "-r", setup["old"], "--require-pq")
    assert refused.code == 2
    error, hint = refused.stderr.splitlines()
    assert error.startswith("transferd: error: job strict has classic-only (X25519) recipients")
    assert setup["old"] in error
    assert hint.startswith("transferd: hint: give the recipient a hybrid identity")
    assert not (tmp_path / "store" / "jobs" / "strict" / "manifests").exists()

    warned = _send(run, "legacy", "-r", setup["old"])
    assert warned.code == 0, warned.stderr
    warning = [ln for ln in warned.stderr.splitlines() if "warning" in ln]
    assert len(warning) == 1
    assert warning[0].startswith("transferd: warning: job legacy has classic-only (X25519)")
    assert "transferd: hint: give the recipient a hybrid identity" in warned.stderr


def test_rekey_from_classic_to_hybrid_resends_nothing_and_the_hybrid_identity_alone_reads_it(
    run: Run, setup: dict[str, str], tmp_path: Path
) -> None:
    assert _send(run, "legacy", "-r", setup["old"]).code == 0
    store = tmp_path / "store"
    before = _objects(store, "legacy")

    moved = run("rekey", "--store", "store", "--job", "legacy", "--identity", "old.key",
                "--sender-key", "sender.key", "--add-recipient", setup["owner"],
                "--remove-recipient", setup["old"], "--require-pq")  # fmt: skip
    assert moved.code == 0, moved.stderr
    assert _objects(store, "legacy") == before  # one new manifest, no object
    assert sorted(p.name for p in (store / "jobs" / "legacy" / "manifests").iterdir()) == [
        f"{1:020d}",
        f"{2:020d}",
    ]
    assert "manifests 1 to 1 of job legacy still hold the classic (X25519) wrap" in moved.stderr
    assert "new job" in moved.stderr

    restored = _restore(run, "legacy", "owner.key", "out", setup["sender"])
    assert restored.code == 0, restored.stderr
    assert _restored(tmp_path / "out") == FILES
    decoded = subprocess.run(
        [sys.executable, str(DECODER), str(store), "legacy", str(tmp_path / "owner.key"),
         str(tmp_path / "ref"), "--sender", setup["sender"]],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert decoded.returncode == 0, decoded.stderr
    assert _restored(tmp_path / "ref") == FILES

    locked_out = _restore(run, "legacy", "old.key", "out-old", setup["sender"])
    assert locked_out.code == 12
    assert "this copy is not encrypted to key tdr1" in locked_out.stderr
