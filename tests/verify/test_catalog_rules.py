"""A catalog restore would refuse is a copy verify --deep reports as altered: one rule, two users.

The copy is forged with the genuine sender key and encrypted to the genuine owner (tests/restore/
forge.py), so every signature and tag holds: only the catalog's content is wrong. Both commands run
as an operator runs them, on the same store directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.harness import TRANSFERD, make_keys
from tests.restore.forge import File, forge
from transferd.stores.local import LocalStore
from transferd.util.keyfiles import load_identity, load_sender_key

JOB = "forged"


def transferd(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TRANSFERD, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("leaf", ["symlink", "file"])
def test_an_entry_inside_a_symlink_or_file_fails_verify_deep_and_restore(
    tmp_path: Path, leaf: str
) -> None:
    keys = make_keys(tmp_path / "keys")
    outside = tmp_path / "outside"
    outside.mkdir()
    first: dict[str, object] | File = (
        {"t": "symlink", "path": "a", "target": str(outside)}
        if leaf == "symlink"
        else File({"t": "file", "path": "a", "mode": 0o644}, b"a file\n")
    )
    items = [first, {"t": "dir", "path": "a-b"}, File({"t": "file", "path": "a/x"}, b"escaped\n")]
    store = LocalStore(tmp_path / "store")
    sender, owner = load_sender_key(keys.sender_key), load_identity(keys.owner_key)
    asyncio.run(forge(store, JOB, sender, owner, items))
    common = ("--store", tmp_path / "store", "--job", JOB, "--sender", keys.sender)

    shallow = transferd("verify", *common, "--seen-state", tmp_path / "seen1.json")
    deep = transferd("verify", *common, "--deep", "--identity", keys.owner_key, "--json",
                     "--seen-state", tmp_path / "seen2.json")  # fmt: skip
    restored = transferd("restore", *common, "--identity", keys.owner_key, "--out", tmp_path / "o")

    assert shallow.returncode == 0, shallow.stderr  # without the key the catalog is opaque
    assert deep.returncode == 21, deep.stdout + deep.stderr  # altered
    report = json.loads(deep.stdout.splitlines()[-1])
    assert "is not a directory (a symlink or a file), yet the catalog places a/x inside it" in (
        json.dumps(report)
    )
    assert restored.returncode == 13, restored.stderr
    assert "refusing to write through it" in restored.stderr
    assert list(outside.iterdir()) == []
    assert not os.path.lexists(tmp_path / "o" / "a" / "x")
