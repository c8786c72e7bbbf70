"""Run the real ``transferd`` command, as a user meets it, and capture what it prints."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


Run = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """``run("keygen", "--kind", "sender", ...)`` runs ``python -m transferd`` in ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    # The tests run against this checkout even when another transferd is installed.
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUTF8"] = "1"

    def _run(*args: str, stdin: str | None = None) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "transferd", *args],
            cwd=tmp_path,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return _run
