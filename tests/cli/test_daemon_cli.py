"""``transferd daemon --check`` names every problem of a configuration; ``--print-config``
prints the example configuration the package ships."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import REPO, Run
from transferd.daemon.config import load_config


def test_check_lists_every_problem_not_only_the_first(run: Run, tmp_path: Path) -> None:
    (tmp_path / "t.toml").write_text(
        '[send]\nlevel = 40\nretires = 3\nuploads = 0\nbandwidth = "fast"\n'
        '[serve]\nlisten = "nowhere"\n[metrix]\n'
    )

    result = run("daemon", "--check", "--config", "t.toml")

    assert (result.code, result.stdout) == (2, "")
    path = "t.toml"  # as given
    assert result.stderr.splitlines() == [
        f"transferd: error: 6 problems in {path}:",
        f"transferd: error: unknown setting 'metrix' in {path}",
        f"transferd: error: unknown setting 'retires' in [send] of {path}",
        "transferd: error: level in [send] must be a zstd level from 1 to 22, not 40",
        f"transferd: error: bandwidth in [send] of {path}: not a bandwidth: 'fast'",
        f"transferd: error: uploads in [send] of {path} must be above 0",
        f"transferd: error: listen in [serve] of {path}: 'nowhere' is not HOST:PORT "
        "(or [IPv6]:PORT)",
        "transferd: hint: every setting, with its default and what it does: transferd daemon "
        "--print-config",
    ]


def test_check_problems_in_json_are_a_list(run: Run, tmp_path: Path) -> None:
    (tmp_path / "t.toml").write_text("[send]\nlevel = 0\nworkers = -1\n")

    result = run("daemon", "--check", "--config", "t.toml", "--json")

    error = json.loads(result.stderr)
    assert error["exit_code"] == 2
    assert error["problems"] == [
        "level in [send] must be a zstd level from 1 to 22, not 0",
        "workers in [send] must be 0 (one per core) or more",
    ]


def test_one_problem_is_reported_as_it_is(run: Run, tmp_path: Path) -> None:
    (tmp_path / "t.toml").write_text("[send]\nlevel = 0\n")

    result = run("daemon", "--check", "--config", "t.toml")

    assert result.stderr.splitlines()[0] == (
        "transferd: error: level in [send] must be a zstd level from 1 to 22, not 0"
    )


def test_print_config_prints_the_shipped_example_which_is_valid(run: Run, tmp_path: Path) -> None:
    result = run("daemon", "--print-config")

    assert result.code == 0
    text = (REPO / "systemd" / "transferd.toml.example").read_text()
    assert result.stdout == text
    (tmp_path / "copy.toml").write_text(result.stdout)
    load_config(tmp_path / "copy.toml", {})
