"""With ``--json`` every line a command prints is a JSON object, on stdout and on stderr alike:
a script can follow a copy without parsing a sentence."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.cli.conftest import Run


def _all_json(text: str) -> list[dict[str, object]]:
    objects = []
    for line in text.splitlines():
        value = json.loads(line)  # raises on any line that is not JSON
        assert isinstance(value, dict), line
        objects.append(value)
    return objects


def test_send_verify_restore_and_ls_print_only_json(run: Run, tmp_path: Path) -> None:
    owner = run("keygen", "--kind", "recipient", "-o", "owner.key", "--json")
    sender = run("keygen", "--kind", "sender", "-o", "sender.key", "--json")
    owner_key = str(_all_json(owner.stdout)[-1]["public_key"])
    sender_key = str(_all_json(sender.stdout)[-1]["public_key"])
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "claims.csv").write_text("id,amount\n1,2\n")
    os.mkfifo(tmp_path / "src" / "pipe")  # never copied: the source logs a warning

    sent = run("send", "src", "--to", "store", "--job", "j", "--sender-key", "sender.key",
               "-r", owner_key, "--state", "state", "--json")  # fmt: skip
    assert sent.code == 0, sent.stderr
    assert _all_json(sent.stdout)[-1]["complete"] is True
    logged = _all_json(sent.stderr)
    assert {"warning": "skipping pipe: not a regular file, directory or symlink",
            "hint": None} in logged  # fmt: skip

    common = ["--store", "store", "--job", "j", "--json"]
    for argv in (
        ["verify", *common, "--sender", sender_key, "--seen-state", "seen"],
        ["restore", *common, "--identity", "owner.key", "--sender", sender_key, "--out", "out"],
        ["ls", *common, "--identity", "owner.key", "--sender", sender_key],
        ["ls", "--store", "store", "--json"],
    ):
        result = run(*argv)
        assert result.code == 0, result.stderr
        assert _all_json(result.stdout), argv
        _all_json(result.stderr)
