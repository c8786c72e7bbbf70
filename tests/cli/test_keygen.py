"""``transferd keygen``: new key files, their mode, and never overwriting one."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from tests.cli.conftest import Run
from transferd.core.keys import RecipientIdentity, SenderSecretKey, parse_key_file

PUBLIC = {
    "recipient": re.compile(r"tdrpq1[a-z0-9]{1952}"),
    "classic": re.compile(r"tdr1[a-z0-9]{58}"),
    "sender": re.compile(r"tds1[a-z0-9]{58}"),
}
SECRET_TYPE = {"recipient": RecipientIdentity, "sender": SenderSecretKey}


@pytest.mark.parametrize("kind", ["recipient", "sender"])
def test_keygen_writes_a_0600_key_file_and_prints_its_public_key(
    run: Run, tmp_path: Path, kind: str
) -> None:
    result = run("keygen", "--kind", kind, "-o", "new.key")

    assert result.code == 0
    assert result.stderr == ""
    public = result.stdout.removesuffix("\n")
    assert PUBLIC[kind].fullmatch(public)
    path = tmp_path / "new.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    secret = parse_key_file(text)
    assert isinstance(secret, SECRET_TYPE[kind])
    assert secret.public().to_text() == public
    created, public_comment, *fingerprint, _key = text.splitlines()
    assert re.fullmatch(r"# created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created)
    assert public_comment == f"# public key: {public}"
    if kind == "recipient":  # hybrid: 1958 characters no one compares by eye
        assert isinstance(secret, RecipientIdentity)
        assert secret.post_quantum
        assert fingerprint == [f"# fingerprint: {secret.public().fingerprint()}"]
    else:
        assert fingerprint == []


def test_keygen_classic_makes_an_x25519_identity(run: Run, tmp_path: Path) -> None:
    result = run("keygen", "--kind", "recipient", "--classic", "-o", "old.key", "--json")

    assert result.code == 0
    report = json.loads(result.stdout)
    assert PUBLIC["classic"].fullmatch(report["public_key"])
    assert report["type"] == "X25519"
    secret = parse_key_file((tmp_path / "old.key").read_text())
    assert isinstance(secret, RecipientIdentity)
    assert not secret.post_quantum
    assert report["fingerprint"] == secret.public().fingerprint()


def test_keygen_classic_is_for_recipients_only(run: Run, tmp_path: Path) -> None:
    result = run("keygen", "--kind", "sender", "--classic", "-o", "s.key")

    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == "transferd: error: --classic applies to recipient keys only\n"
    assert not (tmp_path / "s.key").exists()


def test_keygen_json_reports_kind_public_key_and_file(run: Run) -> None:
    result = run("keygen", "--kind", "sender", "-o", "s.key", "--json")

    assert result.code == 0
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert report == {"kind": "sender", "public_key": report["public_key"], "file": "s.key"}
    assert PUBLIC["sender"].fullmatch(report["public_key"])
    assert result.stdout.count("\n") == 1


def test_two_keys_differ(run: Run) -> None:
    first = run("keygen", "--kind", "recipient", "-o", "a.key")
    second = run("keygen", "--kind", "recipient", "-o", "b.key")
    assert first.stdout != second.stdout


def test_keygen_never_overwrites_a_file(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "taken.key"
    path.write_text("the only copy of something\n")

    result = run("keygen", "--kind", "recipient", "-o", "taken.key")

    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "transferd: error: taken.key already exists; refusing to overwrite it",
        "transferd: hint: choose another file name; "
        "remove the old file only if nothing needs its key",
    ]
    assert path.read_text() == "the only copy of something\n"


def test_keygen_does_not_follow_a_dangling_symlink(run: Run, tmp_path: Path) -> None:
    (tmp_path / "link.key").symlink_to(tmp_path / "elsewhere.key")

    result = run("keygen", "--kind", "sender", "-o", "link.key")

    assert result.code == 2
    assert result.stderr.startswith("transferd: error: link.key already exists;")
    assert not (tmp_path / "elsewhere.key").exists()


def test_keygen_does_not_create_directories(run: Run, tmp_path: Path) -> None:
    result = run("keygen", "--kind", "sender", "-o", "missing/s.key")

    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "transferd: error: cannot create missing/s.key: directory missing does not exist\n"
    )
    assert not (tmp_path / "missing").exists()


def test_keygen_error_in_json(run: Run, tmp_path: Path) -> None:
    (tmp_path / "taken.key").touch()

    result = run("keygen", "--kind", "sender", "-o", "taken.key", "--json")

    assert result.code == 2
    assert result.stdout == ""
    assert json.loads(result.stderr) == {
        "error": "taken.key already exists; refusing to overwrite it",
        "hint": "choose another file name; remove the old file only if nothing needs its key",
        "exit_code": 2,
        "path": "taken.key",
    }


def test_keygen_requires_kind_and_output(run: Run, tmp_path: Path) -> None:
    result = run("keygen")

    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "transferd: error: the following arguments are required: --kind, -o/--output",
        "transferd: hint: run 'transferd keygen --help' for usage",
    ]
    assert list(tmp_path.iterdir()) == []


def test_keygen_rejects_an_unknown_kind(run: Run) -> None:
    result = run("keygen", "--kind", "owner", "-o", "k.key")

    assert result.code == 2
    assert result.stderr.splitlines()[0] == (
        "transferd: error: argument --kind: invalid choice: 'owner' "
        "(choose from 'recipient', 'sender')"
    )
