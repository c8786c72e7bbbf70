"""durable.replace_file: the new bytes whole under the name, or the old ones, and no temp file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from transferd.util.durable import replace_file


def test_a_file_is_created_with_the_mode_given_and_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    replace_file(path, b"first\n", mode=0o600)
    assert path.read_bytes() == b"first\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    replace_file(path, memoryview(b"second, longer\n"), mode=0o600)
    assert path.read_bytes() == b"second, longer\n"
    assert os.listdir(tmp_path) == ["job.json"]  # no temp file left


def test_a_failed_replace_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.mkdir()  # a directory in the way: the rename fails after the bytes were written
    (path / "inside").write_bytes(b"kept")
    with pytest.raises(IsADirectoryError):
        replace_file(path, b"new", mode=0o644)
    assert (path / "inside").read_bytes() == b"kept"
    assert os.listdir(tmp_path) == ["report.json"]


def test_a_missing_directory_is_an_os_error_not_a_new_tree(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        replace_file(tmp_path / "no" / "such" / "file", b"x", mode=0o600)
    assert os.listdir(tmp_path) == []
