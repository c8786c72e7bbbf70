"""``transferd keys show``: the public form of every kind of key, and the reasons a key fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Run
from transferd.core import bech32
from transferd.core.keys import (
    RecipientIdentity,
    RecipientKey,
    SenderSecretKey,
    parse_key_text,
    render_key_file,
)

IDENTITY = RecipientIdentity.from_bytes(bytes(range(32)))
SENDER = SenderSecretKey.from_bytes(bytes(range(32, 64)))
RECIPIENT_PUBLIC = IDENTITY.public().to_text()
SENDER_PUBLIC = SENDER.public().to_text()
CREATED = "2026-01-02T03:04:05Z"
CHECKSUM_HINT = (
    "transferd: hint: copy the key again from its source; one wrong character is enough to fail"
)


def write_secret(path: Path, text: str, mode: int = 0o600) -> None:
    path.write_text(text)
    path.chmod(mode)


def mistype(key: str, position: int = 20) -> str:
    """``key`` with one character replaced by another of the bech32 alphabet."""
    old = key[position]
    new = next(c for c in bech32.CHARSET if c != old.lower())
    return key[:position] + (new.upper() if old.isupper() else new) + key[position + 1 :]


@pytest.mark.parametrize(
    ("secret", "kind", "public"),
    [(IDENTITY, "recipient", RECIPIENT_PUBLIC), (SENDER, "sender", SENDER_PUBLIC)],
)
def test_show_prints_the_public_key_of_a_key_file(
    run: Run, tmp_path: Path, secret: RecipientIdentity | SenderSecretKey, kind: str, public: str
) -> None:
    write_secret(tmp_path / "k.key", render_key_file(secret, CREATED))

    result = run("keys", "show", "k.key")
    assert (result.code, result.stdout, result.stderr) == (0, public + "\n", "")

    result = run("keys", "show", "k.key", "--json")
    assert (result.code, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {
        "kind": kind,
        "public_key": public,
        "file": "k.key",
        "secret": True,
    } | _recipient_fields(secret.public())


def test_show_reads_a_key_file_written_by_keygen(run: Run) -> None:
    made = run("keygen", "--kind", "recipient", "-o", "new.key")

    shown = run("keys", "show", "new.key")

    assert (shown.code, shown.stdout, shown.stderr) == (0, made.stdout, "")


@pytest.mark.parametrize(
    ("public", "kind"), [(RECIPIENT_PUBLIC, "recipient"), (SENDER_PUBLIC, "sender")]
)
def test_show_echoes_a_public_key_normalized(
    run: Run, tmp_path: Path, public: str, kind: str
) -> None:
    (tmp_path / "pub.txt").write_text(f"# the data owner\n\n  {public}  \n\n")
    (tmp_path / "pub.txt").chmod(0o644)  # a public key may be world-readable: no warning

    result = run("keys", "show", "pub.txt")
    assert (result.code, result.stdout, result.stderr) == (0, public + "\n", "")

    result = run("keys", "show", "pub.txt", "--json")
    assert json.loads(result.stdout) == {
        "kind": kind,
        "public_key": public,
        "file": "pub.txt",
        "secret": False,
    } | _recipient_fields(parse_key_text(public))


def _recipient_fields(key: object) -> dict[str, str]:
    """A recipient key's type and fingerprint, which ``keys show --json`` adds."""
    if not isinstance(key, RecipientKey):
        return {}
    return {"type": key.type.value, "fingerprint": key.fingerprint()}


def test_show_gives_a_hybrid_key_and_its_fingerprint(run: Run, tmp_path: Path) -> None:
    identity = RecipientIdentity.hybrid(bytes(range(32)))
    write_secret(tmp_path / "pq.key", render_key_file(identity, CREATED))

    result = run("keys", "show", "pq.key", "--json")

    public = identity.public()
    assert json.loads(result.stdout) == {
        "kind": "recipient",
        "public_key": public.to_text(),
        "file": "pq.key",
        "secret": True,
        "type": "mlkem768x25519",
        "fingerprint": public.fingerprint(),
    }
    assert f"# fingerprint: {public.fingerprint()}" in (tmp_path / "pq.key").read_text()


def test_show_reads_stdin(run: Run) -> None:
    result = run("keys", "show", "-", stdin=SENDER_PUBLIC + "\n")

    assert (result.code, result.stdout, result.stderr) == (0, SENDER_PUBLIC + "\n", "")


def test_show_warns_when_others_can_read_a_secret_key_file(run: Run, tmp_path: Path) -> None:
    write_secret(tmp_path / "k.key", render_key_file(IDENTITY, CREATED), mode=0o644)

    result = run("keys", "show", "k.key")

    assert result.code == 0
    assert result.stdout == RECIPIENT_PUBLIC + "\n"
    assert result.stderr.splitlines() == [
        "transferd: warning: k.key holds a secret key that group or others can access (mode 0644)",
        "transferd: hint: run 'chmod 600 k.key'",
    ]

    result = run("keys", "show", "k.key", "--json")
    assert json.loads(result.stderr) == {
        "warning": "k.key holds a secret key that group or others can access (mode 0644)",
        "hint": "run 'chmod 600 k.key'",
    }


def test_a_mistyped_public_key_is_named_with_exit_2(run: Run, tmp_path: Path) -> None:
    (tmp_path / "pub.txt").write_text(mistype(RECIPIENT_PUBLIC) + "\n")

    result = run("keys", "show", "pub.txt")

    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"transferd: error: pub.txt: key {RECIPIENT_PUBLIC[:12]}… is mistyped or truncated: "
        "its checksum does not match",
        CHECKSUM_HINT,
    ]


def test_a_mistyped_secret_key_is_named_without_revealing_it(run: Run, tmp_path: Path) -> None:
    secret = SENDER.to_text()
    write_secret(
        tmp_path / "k.key", render_key_file(SENDER, CREATED).replace(secret, mistype(secret))
    )

    result = run("keys", "show", "k.key")

    assert result.code == 2
    assert result.stderr.splitlines() == [
        "transferd: error: k.key: key TD-SECRET-SE… is mistyped or truncated: "
        "its checksum does not match",
        CHECKSUM_HINT,
    ]
    assert secret[12:20] not in result.stderr


def test_a_truncated_key_is_named_with_exit_2(run: Run, tmp_path: Path) -> None:
    (tmp_path / "pub.txt").write_text(SENDER_PUBLIC[:-1] + "\n")

    result = run("keys", "show", "pub.txt")

    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"transferd: error: pub.txt: key {SENDER_PUBLIC[:12]}… is mistyped or truncated: "
        "its checksum does not match",
        CHECKSUM_HINT,
    ]


def test_a_key_of_the_wrong_length_is_named_with_exit_2(run: Run, tmp_path: Path) -> None:
    short = bech32.encode("tdr", bytes(31))  # a valid checksum over 31 bytes
    (tmp_path / "pub.txt").write_text(short + "\n")

    result = run("keys", "show", "pub.txt")

    assert result.code == 2
    assert result.stderr == (
        f"transferd: error: pub.txt: key {short[:12]}… has 31 bytes, expected 32: "
        "it is truncated or padded\n"
    )


def test_a_file_with_two_keys_is_refused(run: Run, tmp_path: Path) -> None:
    write_secret(tmp_path / "k.key", render_key_file(IDENTITY, CREATED) + SENDER.to_text() + "\n")

    result = run("keys", "show", "k.key")

    assert result.code == 2
    assert result.stderr == (
        "transferd: error: k.key: key file holds 2 keys, expected exactly one\n"
    )


def test_a_missing_file_is_named(run: Run) -> None:
    result = run("keys", "show", "absent.key")

    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == "transferd: error: cannot read absent.key: no such file or directory\n"


def test_a_binary_file_is_not_a_key_file(run: Run, tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(b"\xff\xfe\x00key")

    result = run("keys", "show", "blob")

    assert result.code == 2
    assert result.stderr == "transferd: error: blob is not a key file: it is not UTF-8 text\n"


def test_a_mistyped_key_in_json(run: Run, tmp_path: Path) -> None:
    (tmp_path / "pub.txt").write_text(mistype(SENDER_PUBLIC) + "\n")

    result = run("keys", "show", "pub.txt", "--json")

    assert (result.code, result.stdout) == (2, "")
    assert json.loads(result.stderr) == {
        "error": f"pub.txt: key {SENDER_PUBLIC[:12]}… is mistyped or truncated: "
        "its checksum does not match",
        "hint": "copy the key again from its source; one wrong character is enough to fail",
        "exit_code": 2,
    }
