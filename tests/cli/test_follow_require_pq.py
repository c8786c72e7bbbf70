"""``send --follow --require-pq`` refuses a classic-only recipient before it touches anything:
no state directory, no connection to the database (whose address here accepts none), no slot."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Run


def test_a_follow_refuses_a_classic_recipient_before_connecting(run: Run, tmp_path: Path) -> None:
    assert run("keygen", "--kind", "sender", "-o", "sender.key").code == 0
    classic = run("keygen", "--kind", "recipient", "--classic", "-o", "owner.key")
    assert classic.code == 0
    owner = classic.stdout.split()[0]
    assert owner.startswith("tdr1")
    r = run(
        "send", "postgresql://transferd@127.0.0.1:1/claims", "--follow", "--require-pq",
        "--to", "store", "--job", "claims", "--sender-key", "sender.key", "-r", owner,
        "--state", "state",
    )  # fmt: skip
    assert r.code == 2, r.stderr
    assert "transferd: error: job claims has classic-only (X25519) recipients, refused by " \
        "--require-pq" in r.stderr  # fmt: skip
    assert "transferd: hint: give the recipient a hybrid identity" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "state" / "jobs" / "claims").exists()
    assert not (tmp_path / "store").exists()
