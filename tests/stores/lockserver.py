"""An S3 server that enforces Object Lock and conditional writes, for tests: ministack.

Researched against moto, s3rver, rclone serve s3 and Ceph radosgw (protocol/THREATS.md,
stores/s3probe.py): ministack (pinned, in its own venv .ci/ministack: it pins botocore) retains
versions in both modes, refuses to delete or shorten them, honours If-None-Match and If-Match
atomically, and drops the lock headers of a multipart upload, as Ceph does. It checks no
signature: rclone serve s3 (s3server.py) stays the server for SigV4, and the one the probe must
find lacking conditional writes and Object Lock.

``shared_lock_server()`` starts one per test process on first use (0.3 s) and stops it at exit;
each test makes buckets of its own. Objects live in memory.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from aiobotocore.config import AioConfig

from tests.stores.s3server import KEY, SECRET, free_port
from transferd.stores.s3 import botocore_session
from transferd.stores.s3config import S3Settings

REPO = Path(__file__).resolve().parents[2]
MINISTACK = REPO / ".ci" / "ministack" / "bin" / "ministack"


@dataclass
class LockServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> object:
        """An aiobotocore client context for the test's own requests."""
        return botocore_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            config=AioConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                             request_checksum_calculation="when_required"),
        )  # fmt: skip

    async def new_bucket(self, *, lock: bool = True) -> str:
        """A new bucket, with Object Lock (and so versioning) unless ``lock`` is False."""
        name = f"t-{os.urandom(6).hex()}"
        async with self.client() as c:  # type: ignore[attr-defined]
            await c.create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
        return name

    def settings(self, bucket: str, prefix: str = "", **overrides: object) -> S3Settings:
        values: dict[str, object] = {"bucket": bucket, "prefix": prefix, "endpoint": self.endpoint,
                                     "access_key": KEY, "secret_key": SECRET}  # fmt: skip
        values.update(overrides)
        return S3Settings(**values)  # type: ignore[arg-type]

    def config_file(self, directory: Path, extra: str = "") -> Path:
        """A TOML file with the [s3] table pointing at this server (``extra``: more lines)."""
        creds = directory / "lock-s3.credentials"
        creds.write_text(
            f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"
        )
        creds.chmod(0o600)
        path = directory / "lock-s3.toml"
        path.write_text(
            f'[s3]\nendpoint = "{self.endpoint}"\ncredentials_file = "{creds.name}"\n'
            f"read_timeout = 10\n{extra}"
        )
        return path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_lock_server(directory: Path) -> LockServer:
    """ministack's S3 alone on a free port of 127.0.0.1; returns once it accepts connections."""
    if not MINISTACK.exists():
        raise RuntimeError(f"{MINISTACK} is missing: run scripts/setup (it installs ministack)")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(directory), "TMPDIR": str(directory),
        "BIND_HOST": "127.0.0.1", "GATEWAY_PORT": str(port), "SERVICES": "s3",
        "MINISTACK_WORKER_THREADS": "8", "LOG_LEVEL": "WARNING",
    }  # fmt: skip
    log = open(directory / f"ministack-{port}.out", "wb")  # noqa: SIM115 - the child owns it
    process = subprocess.Popen(
        [str(MINISTACK)], env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL
    )
    log.close()
    server = LockServer(port, process)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ministack exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError("ministack did not start listening within 20 s")


_shared: LockServer | None = None


def shared_lock_server() -> LockServer:
    """One ministack for this test process, started on first use and stopped at exit."""
    global _shared
    if _shared is None or _shared.process.poll() is not None:
        directory = Path(tempfile.mkdtemp(prefix="transferd-ministack-"))
        _shared = start_lock_server(directory)
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        atexit.register(_shared.stop)
    return _shared
