"""``pip install .`` into a fresh virtual environment: the base dependencies alone give a working
``transferd`` for a directory, and each optional part names the extra it needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import REPO

SHIPPED = ("pyproject.toml", "README.md", "LICENSE", "transferd", "systemd")
"""What the build reads: the package, its metadata, and the example configuration it links."""


MISSING: list[tuple[list[str], str, str]] = [
    (["send", "postgresql://u@127.0.0.1:1/db", "--to", "store", "--job", "j",
      "--sender-key", "sender.key"], "postgres", "asyncpg"),
    (["send", "az://account/container", "--to", "store", "--job", "j",
      "--sender-key", "sender.key"], "azure", "azure"),
    (["verify", "--store", "s3://bucket/prefix", "--job", "j", "--sender", "SENDER"],
     "s3", "aiobotocore"),
]  # fmt: skip
"""Commands that need an extra the base install lacks: (argv, extra, the module missing)."""


def _install(root: Path) -> Path:
    """The package installed from a copy of its sources into a fresh venv under ``root``."""
    source = root / "source"  # a copy: a build writes build/ and *.egg-info beside the sources
    source.mkdir(parents=True)
    for name in SHIPPED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, source / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(src, source / name)
    env = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=120)
    install = subprocess.run(
        [str(env / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
         str(source)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    return env


def _run(venv: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "transferd"), *args], capture_output=True, text=True, timeout=120,
        cwd=cwd, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_pip_install_into_a_fresh_venv(tmp_path: Path) -> None:
    """One test, one install (40 s): each check below on the same venv."""
    venv = _install(tmp_path / "install")
    _help_works_with_only_the_base_dependencies(venv)
    _the_package_ships_its_licence_metadata_and_example_configuration(venv)
    _a_directory_round_trip_needs_no_extra(venv, tmp_path / "round-trip")
    for argv, extra, module in MISSING:
        _a_missing_extra_is_named(venv, tmp_path / f"missing-{extra}", argv, extra, module)


def _help_works_with_only_the_base_dependencies(venv: Path) -> None:
    for module in ("asyncpg", "aiobotocore", "azure.storage.blob"):
        probe = subprocess.run([str(venv / "bin" / "python"), "-I", "-c", f"import {module}"],
                               capture_output=True, check=False)  # fmt: skip
        assert probe.returncode != 0, f"{module} is installed without its extra"

    result = _run(venv, "--help")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: transferd ")
    for command in ("send", "restore", "verify", "ls", "jobs", "daemon", "generate"):
        assert _run(venv, command, "--help").returncode == 0, command


def _the_package_ships_its_licence_metadata_and_example_configuration(venv: Path) -> None:
    probe = (
        "import importlib.metadata as m; d = m.distribution('transferd'); "
        "print(d.metadata['License-Expression']); "
        "print(any(f.name == 'LICENSE' for f in d.files or ()))"
    )
    shown = subprocess.run([str(venv / "bin" / "python"), "-I", "-c", probe], capture_output=True,
                           text=True, check=True).stdout.split()  # fmt: skip
    assert shown == ["EUPL-1.2", "True"]

    printed = _run(venv, "daemon", "--print-config")

    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == (REPO / "systemd" / "transferd.toml.example").read_text()


def _a_directory_round_trip_needs_no_extra(venv: Path, tmp_path: Path) -> None:
    tmp_path.mkdir()
    owner = _run(venv, "keygen", "--kind", "recipient", "-o", "owner.key", cwd=tmp_path)
    assert owner.returncode == 0, owner.stderr
    assert (
        _run(venv, "keygen", "--kind", "sender", "-o", "sender.key", cwd=tmp_path).returncode == 0
    )
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "claims.csv").write_text("id,amount\n1,2\n")

    sent = _run(venv, "send", "src", "--to", "store", "--job", "j", "--sender-key", "sender.key",
                "-r", owner.stdout.strip(), "--state", "state", cwd=tmp_path)  # fmt: skip
    restored = _run(venv, "restore", "--store", "store", "--job", "j", "--identity",
                    "owner.key", "--out", "out", "-q", cwd=tmp_path)  # fmt: skip

    assert sent.returncode == 0, sent.stderr
    assert restored.returncode == 0, restored.stderr
    assert (tmp_path / "out" / "claims.csv").read_text() == "id,amount\n1,2\n"


def _a_missing_extra_is_named(
    venv: Path, tmp_path: Path, argv: list[str], extra: str, module: str
) -> None:
    tmp_path.mkdir()
    sender = _run(venv, "keygen", "--kind", "sender", "-o", "sender.key", cwd=tmp_path)
    argv = [sender.stdout.strip() if a == "SENDER" else a for a in argv]

    result = _run(venv, *argv, cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("transferd: error: ")
    assert f"need the Python package {module}, which is not installed" in lines[0]
    assert lines[1] == (
        f"transferd: hint: install transferd with its {extra} extra: "
        f"pip install 'transferd[{extra}]'"
    )
