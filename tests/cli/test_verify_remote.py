"""``transferd verify --from URL``: an auditor verifies a copy through the storage host's API,
with a read-only key, against a real ``transferd serve`` process."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import REPO, Run
from tests.verify.copies import Copy, flip_bit, make_copy

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def host(tmp_path: Path, run: Run) -> Iterator[tuple[Copy, str, Path]]:
    """A copy, served read-only to an auditor's key by ``transferd serve``; (copy, url, key)."""
    copy = make_copy(tmp_path / "c")
    auditor = run("keygen", "--kind", "sender", "-o", "auditor.key").stdout.strip()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "transferd", "serve", "--store", str(copy.store_dir),
         "--listen", f"127.0.0.1:{port}", "--allow", f"{copy.job}={copy.sender.to_text()}",
         "--allow-reader", f"{copy.job}={auditor}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        deadline, log = time.monotonic() + 30, []
        while time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 0.5)[0]:
                line = proc.stdout.readline()
                log.append(line)
                if "listening on" in line:
                    break
                if not line and proc.poll() is not None:
                    raise AssertionError("serve exited:\n" + "".join(log))
        else:
            raise AssertionError("serve did not start:\n" + "".join(log))
        yield copy, f"http://127.0.0.1:{port}", tmp_path / "auditor.key"
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()


def test_an_auditor_verifies_through_the_host_and_sees_damage(
    run: Run, host: tuple[Copy, str, Path]
) -> None:
    copy, url, key = host
    args = ["verify", "--from", url, "--reader-key", str(key), "--job", copy.job,
            "--sender", copy.sender.to_text(), "--seen-state", "seen.json"]  # fmt: skip
    result = run(*args)
    assert result.code == 0, result.stderr
    assert f"verify job {copy.job} at {url}: PASS" in result.stdout

    flip_bit(copy.packs()[0])
    result = run(*args)
    assert result.code == 21
    assert copy.packs()[0].name in result.stdout


def test_a_host_that_does_not_answer_is_could_not_read(run: Run, tmp_path: Path) -> None:
    run("keygen", "--kind", "sender", "-o", "auditor.key")
    sender = run("keygen", "--kind", "sender", "-o", "sender.key").stdout.strip()
    result = run("verify", "--from", f"http://127.0.0.1:{free_port()}", "--reader-key",
                 "auditor.key", "--job", "j", "--sender", sender, "--seen-state", "s.json",
                 "--json")  # fmt: skip
    assert result.code == 23, result.stderr
    assert "could not be listed" in result.stdout
