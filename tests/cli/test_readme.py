"""Every command block of README.md's usage section, run as it stands, in order, on 127.0.0.1.

A README whose commands have drifted from the program is worse than none: an operator copies
them first. The blocks of "## Usage" are run in one directory, each command as bash runs it,
with three readings only: ``host`` (and ``0.0.0.0``) is 127.0.0.1 on a free port, and ``/srv``,
``/exports`` and ``/data`` are directories under the test's own. A command ending in ``&`` (the
storage host) runs in the background until the end. Every other command must exit 0, and no
placeholder (``…``) may be left in a command: the section must be runnable as written.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import REPO

README = REPO / "README.md"


def usage_commands(text: str) -> list[str]:
    """The commands of the usage section's code blocks, continuation lines joined."""
    section = text.split("\n## Usage\n", 1)[1].split("\n## ", 1)[0]
    commands: list[str] = []
    for block in re.findall(r"^```\n(.*?)^```$", section, re.S | re.M):
        pending = ""
        for line in block.splitlines():
            pending += line
            if pending.endswith("\\"):
                pending = pending[:-1]
                continue
            if pending.strip():
                commands.append(pending.strip())
            pending = ""
    return commands


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _exports(root: Path) -> None:
    rnd = random.Random(19)
    for rel, size in [("claims/2019/claims.csv", 300_000), ("claims/2020/claims.csv", 200_000),
                      ("forms/0001.txt", 900), ("scans/s1.pdf", 50_000),
                      ("scratch/tmp.bin", 10_000)]:  # fmt: skip
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rnd.randbytes(size))


def _wait_for(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the host exited {proc.returncode}:\n{log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"the host never listened:\n{log.read_text()}")


def test_the_usage_section_has_commands_and_no_code_above_the_title() -> None:
    text = README.read_text()
    assert text.startswith("# transferd\n\n```\n./scripts/demo "), "title, then the two commands"
    second = text.splitlines()[4]
    assert second.startswith("./scripts/test "), second
    assert len(usage_commands(text)) >= 20
    assert not re.search(r"\]\((\.\./|/|[a-z]+:)", text), "a link pointing outside the repository"


@pytest.mark.slow
def test_every_command_of_the_usage_section_runs(tmp_path: Path) -> None:
    port = _free_port()
    root = tmp_path / "root"
    for part in ("srv", "exports", "data"):
        (root / part).mkdir(parents=True)
    _exports(root / "exports" / "snds")
    work = tmp_path / "work"
    work.mkdir()
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "transferd").write_text(f'#!/bin/sh\nexec {sys.executable} -m transferd "$@"\n')
    (shim / "transferd").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(
        PATH=f"{shim}:{env.get('PATH', '/usr/bin:/bin')}",
        PYTHONPATH=str(REPO),
        TRANSFERD_STATE=str(tmp_path / "state"),
    )
    readings = [
        (r"\bhttps://host:8443\b", f"https://127.0.0.1:{port}"),
        (r"\b0\.0\.0\.0:8443\b", f"127.0.0.1:{port}"),
        (r"subjectAltName=DNS:host\b", "subjectAltName=IP:127.0.0.1"),
        (r"(?<![\w.])/(srv|exports|data)/", rf"{root}/\1/"),
    ]
    background: list[subprocess.Popen[bytes]] = []
    ran: list[str] = []
    try:
        for command in usage_commands(README.read_text()):
            line = command
            for pattern, replacement in readings:
                line = re.sub(pattern, replacement, line)
            runnable = re.sub(r"\s#.*$", "", line)  # a comment: what the README says to people
            assert "…" not in runnable, f"a placeholder in the usage section: {command}"
            if runnable.rstrip().endswith("&"):
                log = tmp_path / f"background-{len(background)}.log"
                with log.open("wb") as out:
                    proc = subprocess.Popen(
                        ["bash", "-c", f"exec {runnable.rstrip().removesuffix('&')}"],
                        cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                    )  # fmt: skip
                background.append(proc)
                _wait_for(port, proc, log)
                ran.append(command)
                continue
            done = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", runnable], cwd=work, env=env,
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert done.returncode == 0, (
                f"README command exited {done.returncode}:\n{command}\n{done.stdout}{done.stderr}"
            )
            ran.append(command)
    finally:
        for proc in background:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)

    assert any(c.startswith("transferd serve ") for c in ran)
    restored = root / "data" / "snds" / "claims" / "2019" / "claims.csv"
    assert (
        restored.read_bytes()
        == (root / "exports" / "snds" / "claims" / "2019" / "claims.csv").read_bytes()
    )
    assert not (root / "data" / "snds" / "scratch").exists(), "the filter held"
    assert sorted(p.name for p in (root / "data" / "claims-2019").rglob("*")) == [
        "2019", "claims", "claims.csv"
    ]  # fmt: skip
