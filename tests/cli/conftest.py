"""Run the real ``transferd`` command, as a user meets it, and capture what it prints."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
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
def run(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """``run("keygen", "--kind", "sender", ...)`` runs ``python -m transferd`` in ``tmp_path``;
    ``prefix`` goes before it (``setpriv …``, ``nsenter …``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    # The tests run against this checkout even when another transferd is installed.
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUTF8"] = "1"
    # Each run's stdout and stderr are also kept, as NN.stdout and NN.stderr beside tmp_path:
    # `grep -r Traceback /tmp/pytest-of-$USER/pytest-current/captured*` checks every run's.
    captured = tmp_path_factory.mktemp("captured")
    numbers = itertools.count(1)

    def _run(*args: str, stdin: str | None = None, prefix: Sequence[str] = ()) -> Result:
        proc = subprocess.run(
            [*prefix, sys.executable, "-m", "transferd", *args],
            cwd=tmp_path,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
            check=False,
        )
        n = next(numbers)
        (captured / f"{n:02d}.stdout").write_text(proc.stdout, encoding="utf-8")
        (captured / f"{n:02d}.stderr").write_text(proc.stderr, encoding="utf-8")
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return _run
