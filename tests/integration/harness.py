"""Real processes for end-to-end tests: keys, a storage host, a sender, a restore, a tree diff."""

from __future__ import annotations

import os
import random
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TRANSFERD = [sys.executable, "-m", "transferd"]


def cli(
    *args: str | os.PathLike[str], check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*TRANSFERD, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"transferd {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}"
        )
    return proc


@dataclass
class Keys:
    owner_key: Path
    owner: str
    sender_key: Path
    sender: str


def make_keys(directory: Path) -> Keys:
    directory.mkdir(parents=True, exist_ok=True)
    owner = cli("keygen", "--kind", "recipient", "-o", directory / "owner.key").stdout.strip()
    sender = cli("keygen", "--kind", "sender", "-o", directory / "sender.key").stdout.strip()
    return Keys(directory / "owner.key", owner, directory / "sender.key", sender)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``transferd serve`` as a child process, restartable on the same port."""

    def __init__(
        self, store: Path, sender: str, job_pattern: str = "*", port: int | None = None
    ) -> None:
        self.store = store
        self.sender = sender
        self.job_pattern = job_pattern
        self.port = port or free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.log: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.proc = subprocess.Popen(
            [*TRANSFERD, "serve", "--store", str(self.store), "--listen", f"127.0.0.1:{self.port}",
             "--allow", f"{self.job_pattern}={self.sender}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                self.log.append(line)
                if "listening on" in line:
                    os.set_blocking(self.proc.stdout.fileno(), False)
                    return self
                if not line and self.proc.poll() is not None:
                    break
        raise AssertionError("transferd serve did not start:\n" + "".join(self.log))

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code


def send_args(source: Path, url: str, job: str, keys: Keys, state: Path, *extra: str) -> list[str]:
    return [*TRANSFERD, "send", str(source), "--to", url, "--job", job, "--sender-key",
            str(keys.sender_key), "-r", keys.owner, "--state", str(state), "--progress", "never",
            "--json", *extra]  # fmt: skip


def stored_bytes(store: Path, job: str) -> int:
    return sum(
        p.stat().st_size for p in (store / "jobs" / job / "objects").rglob("*") if p.is_file()
    )


def tree(root: Path) -> dict[bytes, tuple[str, int, bytes]]:
    """Every entry below root: kind, permission bits, and content (file) or target (link)."""
    out: dict[bytes, tuple[str, int, bytes]] = {}
    broot = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(broot):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, broot)
            st = os.lstat(full)
            if os.path.islink(full):
                out[rel] = ("link", 0, os.readlink(full))
            elif os.path.isdir(full):
                out[rel] = ("dir", st.st_mode & 0o7777, b"")
            else:
                with open(full, "rb") as f:
                    out[rel] = ("file", st.st_mode & 0o7777, f.read())
    return out


def make_tree(root: Path, seed: int, big_mib: int = 24) -> None:
    """Files of every shape a send must carry, some large enough for several packs."""
    rng = random.Random(seed)
    (root / "tables").mkdir(parents=True)
    (root / "forms" / "2024" / "01").mkdir(parents=True)
    rows = "".join(
        f"{i},{rng.randrange(10**9)},GHM{rng.randrange(999):03d},{rng.random():.4f}\n"
        for i in range(60000)
    )
    (root / "tables" / "claims.csv").write_text(rows * max(1, big_mib // 2))
    (root / "tables" / "scan.bin").write_bytes(rng.randbytes(big_mib * 1024 * 1024 // 2))
    for i in range(300):
        (root / "forms" / "2024" / "01" / f"form{i:04d}.txt").write_text(
            f"form {i}\n" * rng.randrange(1, 200)
        )
    (root / "empty").write_bytes(b"")
    (root / "link-to-claims").symlink_to("tables/claims.csv")
    (root / "dangling").symlink_to("/nonexistent/target")
    os.chmod(root / "tables" / "scan.bin", 0o600)
    (root / os.fsdecode(b"caf\xe9-latin1.txt")).write_bytes(b"non-UTF-8 name\n")
    with open(root / "sparse.img", "wb") as f:
        f.truncate(64 * 1024 * 1024)
        f.seek(10 * 1024 * 1024)
        f.write(b"data in the middle of a hole")
