"""A real PostgreSQL cluster for tests: initdb in a temporary directory, a free loopback port.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
``postgres`` account (Debian's package creates it), or ``nobody``; the test connects over TCP on
127.0.0.1, so it never needs to read the server's files. Each pytest-xdist worker starts its own
cluster. Authentication: ``postgres`` is trusted (tests connect freely); every other role needs
its SCRAM password, so the wrong-password case is real.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

HBA = """\
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""


def bindir() -> Path:
    """The newest installed server's binaries (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("no PostgreSQL server found: run ./scripts/setup (installs postgresql)")
    return Path(initdb).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    root: Path
    port: int
    bin: Path
    account: str | None
    """The account the server runs as (None: ours)."""

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, db: str, user: str = "postgres", password: str | None = None) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}"

    def tool(self, name: str) -> str:
        return str(self.bin / name)

    def psql(self, db: str, sql: str, *, check: bool = True) -> str:
        proc = subprocess.run(
            [self.tool("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(f"psql failed: {proc.stderr}")
        return proc.stdout

    def psql_file(self, db: str, path: Path) -> None:
        proc = subprocess.run(
            [self.tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
             "-p", str(self.port), "-U", "postgres", "-d", db, "-f", str(path)],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if proc.returncode != 0:
            raise AssertionError(f"psql -f {path} failed: {proc.stderr}")

    def pg_ctl(self, *args: str) -> None:
        _as(self.account, [self.tool("pg_ctl"), "-D", str(self.data), *args])

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "immediate", "-w")

    def restart(self) -> None:
        """A clean restart (``-m fast``), keeping the options the server was started with."""
        self.pg_ctl("restart", "-m", "fast", "-w", "-l", str(self.root / "log"))


def _as(account: str | None, argv: list[str]) -> subprocess.CompletedProcess[str]:
    if account is not None:
        argv = ["runuser", "-u", account, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120)


def _account() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and there is no postgres or nobody account to run as")


LOGICAL = (
    " -c wal_level=logical -c max_replication_slots=8 -c max_wal_senders=8"
    " -c wal_sender_timeout=10s"
)
"""Follow mode: logical decoding, and a short wal_sender_timeout so that a lost consumer is
noticed (and a stopping server never waits long for one)."""


def start_cluster(*, logical: bool = False) -> Cluster:
    account = _account()
    root = Path(tempfile.mkdtemp(prefix="transferd-pg-"))
    if account is not None:
        entry = pwd.getpwnam(account)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(root, free_port(), bindir(), account)
    _as(account, [cluster.tool("initdb"), "-D", str(cluster.data), "-A", "trust", "-U",
                  "postgres", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"])  # fmt: skip
    _write_as(account, cluster.data / "pg_hba.conf", HBA)
    for attempt in range(5):
        options = (
            f"-k {root} -c listen_addresses=127.0.0.1 -p {cluster.port} -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off -c shared_buffers=32MB "
            "-c max_connections=60 -c max_wal_size=1GB"
        ) + (LOGICAL if logical else "")
        try:
            cluster.pg_ctl("-l", str(root / "log"), "-w", "-o", options, "start")
            return cluster
        except subprocess.CalledProcessError:
            if attempt == 4:
                raise
            cluster.port = free_port()  # another process took the port meanwhile
    raise AssertionError("unreachable")


def _write_as(account: str | None, path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    if account is not None:
        entry = pwd.getpwnam(account)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def remove(cluster: Cluster) -> None:
    try:
        cluster.stop()
    finally:
        shutil.rmtree(cluster.root, ignore_errors=True)
