"""The daemon as a real process: a notify socket the test owns, its config, its CLI.

Sockets live in a short directory of their own under /tmp: an AF_UNIX path is limited to 107
bytes, which pytest's tmp_path under xdist can exceed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import Keys, free_port

TRANSFERD = [sys.executable, "-m", "transferd"]


@contextmanager
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="td-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class NotifySocket:
    """The AF_UNIX datagram socket systemd would own: collects what the daemon notifies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[dict[str, str]] = []

    def wait_for(self, key: str, value: str | None = None, timeout: float = 30) -> dict[str, str]:
        """The first message (seen before or arriving within ``timeout``) with KEY(=value)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for message in self.messages[seen:]:
                if key in message and (value is None or message[key] == value):
                    return message
            seen = len(self.messages)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key}={value} notification in {self.messages}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))

    def collect(self, seconds: float) -> None:
        """Receive whatever arrives for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))

    def count(self, key: str) -> int:
        return sum(key in m for m in self.messages)

    def close(self) -> None:
        self.sock.close()


class Daemon:
    """``transferd daemon`` with both roles: it sends its jobs to its own receiving role."""

    def __init__(self, root: Path, sockets: Path, keys: Keys, **send: Any) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.keys = keys
        self.control = sockets / "control.sock"
        self.notify = NotifySocket(sockets / "notify.sock")
        self.port = free_port()
        self.store = root / "store"
        self.config = root / "transferd.toml"
        self.log = root / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        settings = {"pack_size": "1M", "uploads": 2, "workers": 1, "retry_delay": 1, **send}
        lines = [
            "[daemon]",
            f'state_dir = "{root / "state"}"',
            f'control_socket = "{self.control}"',
            "drain_timeout = 10",
            "[metrics]",
            'listen = "127.0.0.1:0"',
            "[send]",
            f'sender_key = "{keys.sender_key}"',
            f'store = "http://127.0.0.1:{self.port}"',
            f'recipients = ["{keys.owner}"]',
            *(f"{k} = {json.dumps(v)}" for k, v in settings.items()),
            "[serve]",
            "enabled = true",
            f'store = "{self.store}"',
            f'listen = "127.0.0.1:{self.port}"',
            "[serve.senders]",
            f'"*" = ["{keys.sender}"]',
        ]
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, watchdog_usec: int = 1_000_000) -> Daemon:
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(self.notify.path),
            "WATCHDOG_USEC": str(watchdog_usec),
        }
        self.notify.messages.clear()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*TRANSFERD, "daemon", "--config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        try:
            self.notify.wait_for("READY", "1")
        except AssertionError:
            self.kill()
            raise AssertionError("daemon not ready:\n" + self.log.read_text()) from None
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def jobs(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*TRANSFERD, "jobs", *args, "--socket", str(self.control), "--json"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(f"jobs {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    def status(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.jobs("status", name).stdout)
        return result

    def wait_job(
        self, name: str, test: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(name)
            if test(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"job {name} never got there: {status}")
            time.sleep(0.1)

    def metrics_url(self) -> str:
        for line in self.log.read_text().splitlines()[::-1]:
            if "metrics endpoint ready" in line:
                return line.rsplit("url=", 1)[1].split()[0]
        raise AssertionError("no metrics endpoint in the log")

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of the metrics endpoint: (name, sorted labels) -> value."""
        url = self.metrics_url()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 -- loopback http
            text = response.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def objects_held(self, job: str) -> int:
        root = self.store / "jobs" / job / "objects"
        return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0

    def close(self) -> None:
        self.kill()
        self.notify.close()


def make_source(root: Path, mib: int, seed: int = 7) -> Path:
    """A tree with one large incompressible file (so pack counts follow its size) and small ones."""
    rng = random.Random(seed)
    (root / "tables").mkdir(parents=True)
    (root / "tables" / "big.bin").write_bytes(rng.randbytes(mib << 20))
    for i in range(40):
        (root / f"form{i:02d}.txt").write_text(f"form {i}\n" * rng.randrange(1, 300))
    (root / "link").symlink_to("tables/big.bin")
    return root
